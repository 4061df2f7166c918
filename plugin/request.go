package plugin

import (
	"bytes"

	"github.com/floodgate-proxy/floodgate/internal/host"
)

// request reads the attributes of the current request from the host, each at most once: a
// request matched against several policies asks the host for every header it needs only once.
type request struct {
	// The headers read so far: the first few inline (a request's context is allocated anyway),
	// then in more. A short list beats a map here: policies read a handful of headers.
	inline [4]header
	n      int
	more   []header
	source cached
	// metadata is the stream's dynamic metadata, read once when a key source needs it.
	metadata     []byte
	metadataRead bool
}

type header struct {
	name string
	cached
}

type cached struct {
	value string
	found bool
	read  bool
}

// Header returns the first value of the request header name (lower case).
func (r *request) Header(name string) (string, bool) {
	for i := range r.inline[:r.n] {
		if h := &r.inline[i]; h.name == name {
			return h.value, h.found
		}
	}
	for i := range r.more {
		if h := &r.more[i]; h.name == name {
			return h.value, h.found
		}
	}
	v, err := host.RequestHeader(name)
	h := header{name: name, cached: cached{value: v, found: err == nil, read: true}}
	if r.n < len(r.inline) {
		r.inline[r.n] = h
		r.n++
	} else {
		r.more = append(r.more, h)
	}
	return h.value, h.found
}

// SourceAddress returns the downstream peer address ("ip:port") from the source.address
// property, or "" where the host has none.
func (r *request) SourceAddress() string {
	if !r.source.read {
		v, err := host.Property("source", "address")
		r.source = cached{value: string(v), found: err == nil, read: true}
	}
	return r.source.value
}

// Metadata returns the stream's dynamic metadata (the property "metadata", a serialized
// envoy.config.core.v3.Metadata), or nil where the host has none.
func (r *request) Metadata() []byte {
	if !r.metadataRead {
		v, err := host.Property("metadata")
		if err == nil {
			r.metadata = bytes.Clone(v) // the host's buffer is reused by the next host call
		}
		r.metadataRead = true
	}
	return r.metadata
}
