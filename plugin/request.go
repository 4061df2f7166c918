package plugin

import "github.com/floodgate-proxy/floodgate/internal/host"

// request reads the attributes of the current request from the host, each at most once: a
// request matched against several policies asks the host for every header it needs only once.
type request struct {
	headers map[string]cached
	source  cached
}

type cached struct {
	value string
	found bool
	read  bool
}

// Header returns the first value of the request header name (lower case).
func (r *request) Header(name string) (string, bool) {
	if c, ok := r.headers[name]; ok {
		return c.value, c.found
	}
	v, err := host.RequestHeader(name)
	c := cached{value: v, found: err == nil, read: true}
	if r.headers == nil {
		r.headers = make(map[string]cached, 4)
	}
	r.headers[name] = c
	return c.value, c.found
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
