package plugin

import "github.com/floodgate-proxy/floodgate/internal/host"

// request reads the attributes of the current request from the host, each at most once: a
// request matched against several policies asks the host for every header it needs only once.
type request struct {
	// The headers read so far: the first few inline (a request's context is allocated anyway),
	// then in more. A short list beats a map here: policies read a handful of headers.
	inline [4]header
	n      int
	more   []header
	source cached
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
