package config

import (
	"encoding/base64"
	"encoding/binary"
	"net/url"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// Request is what a policy reads of a request. The plugin implements it over host calls; tests
// use a map.
type Request interface {
	// Header returns the first value of a lower-case header, pseudo-headers included.
	Header(name string) (string, bool)
	// SourceAddress returns the downstream peer address ("ip:port").
	SourceAddress() string
}

// MaxKeyBytes bounds a built key: a longer one is replaced by a 128-bit hash of it, so a hostile
// header cannot make keys of unbounded size. (crypto/sha256 and net are avoided on purpose: on
// wasip1 they link WASI functions Envoy does not provide, such as path_filestat_get.)
const MaxKeyBytes = 256

// maxTokenBytes bounds the bearer token a jwt_claim source decodes.
const maxTokenBytes = 8192

func path(r Request) string {
	p, _ := r.Header(":path")
	return p
}

// Matches tells whether the policy applies to the request.
func (p *Policy) Matches(r Request) bool {
	m := &p.Match
	if m.PathPrefix != "" || m.PathExact != "" || m.PathRegex != nil {
		full := path(r)
		pth, _, _ := strings.Cut(full, "?")
		switch {
		case m.PathPrefix != "" && !strings.HasPrefix(pth, m.PathPrefix):
			return false
		case m.PathExact != "" && pth != m.PathExact:
			return false
		case m.PathRegex != nil && !m.PathRegex.MatchString(pth):
			return false
		}
	}
	if len(m.Methods) > 0 {
		method, _ := r.Header(":method")
		if !contains(m.Methods, strings.ToUpper(method)) {
			return false
		}
	}
	if len(m.Hosts) > 0 {
		host, _ := r.Header(":authority")
		host = stripPort(host)
		if !contains(m.Hosts, strings.ToLower(host)) {
			return false
		}
	}
	for _, h := range m.Headers {
		if _, ok := r.Header(h.Name); ok != h.Present {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// BuildKey builds the request's key for this policy: the policy name and every part, each
// length-prefixed so that parts cannot run into each other. ok is false when a part is missing
// and the policy skips such requests.
func (p *Policy) BuildKey(r Request, dst []byte) (key []byte, ok bool) {
	key = appendPart(dst[:0], p.Name)
	for _, part := range p.Key {
		v, found := part.value(r)
		if !found {
			if p.MissingKey.Skip {
				return nil, false
			}
			return appendPart(appendPart(dst[:0], p.Name), "\x00fallback:"+p.MissingKey.Fallback), true
		}
		key = appendPart(key, v)
	}
	if len(key) > MaxKeyBytes {
		h1, h2 := fnv64(key, 14695981039346656037), fnv64(key, 0x9ae16a3b2f90404f)
		key = binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(appendPart(dst[:0], p.Name), h1), h2)
	}
	return key, true
}

func appendPart(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func (k *KeyPart) value(r Request) (string, bool) {
	switch k.Type {
	case KeyHeader:
		return r.Header(k.Name)
	case KeyClientIP:
		return clientIP(r, k.TrustedHops)
	case KeyPath:
		pth, _, _ := strings.Cut(path(r), "?")
		return pth, pth != ""
	case KeyMethod:
		return r.Header(":method")
	case KeyQuery:
		_, q, _ := strings.Cut(path(r), "?")
		values, err := url.ParseQuery(q)
		if err != nil || !values.Has(k.Name) {
			return "", false
		}
		return values.Get(k.Name), true
	case KeyJWTClaim:
		return jwtClaim(r, k.Header, k.Claim)
	case KeyConstant:
		return k.Value, true
	}
	return "", false
}

// clientIP returns the peer's IP (hops 0) or the hops-th address from the right of
// X-Forwarded-For.
func clientIP(r Request, hops int) (string, bool) {
	if hops == 0 {
		addr := stripPort(r.SourceAddress())
		return addr, addr != ""
	}
	xff, ok := r.Header("x-forwarded-for")
	if !ok {
		return "", false
	}
	parts := strings.Split(xff, ",")
	if len(parts) < hops {
		return "", false
	}
	ip := strings.TrimSpace(parts[len(parts)-hops])
	return ip, ip != ""
}

// jwtClaim reads a claim of the bearer token in header, WITHOUT verifying the token: run Envoy's
// jwt_authn filter before this plugin when the claim must be trusted.
func jwtClaim(r Request, header, claim string) (string, bool) {
	v, ok := r.Header(header)
	if !ok || len(v) > maxTokenBytes {
		return "", false
	}
	token, found := strings.CutPrefix(v, "Bearer ")
	if !found {
		token, found = strings.CutPrefix(v, "bearer ")
	}
	if !found {
		return "", false
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", false
	}
	c := gjson.GetBytes(payload, claim)
	if !c.Exists() {
		return "", false
	}
	if c.Type == gjson.String {
		return c.Str, true
	}
	return c.Raw, true
}

// CostOf returns the request's cost: the constant, or the cost header when it holds a positive
// integer (capped at Max), else the default.
func (p *Policy) CostOf(r Request) int64 {
	if p.Cost.Header == "" {
		return p.Cost.Value
	}
	v, ok := r.Header(p.Cost.Header)
	if !ok {
		return p.Cost.Value
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 1 {
		return p.Cost.Value
	}
	return min(n, p.Cost.Max)
}

// stripPort removes the port of "host:port" or "[v6]:port"; a bare IPv6 address stays whole.
func stripPort(addr string) string {
	if strings.HasPrefix(addr, "[") {
		if end := strings.IndexByte(addr, ']'); end > 0 {
			return addr[1:end]
		}
		return addr
	}
	if i := strings.LastIndexByte(addr, ':'); i >= 0 && strings.IndexByte(addr, ':') == i {
		return addr[:i]
	}
	return addr
}

// fnv64 is FNV-1a 64 from a chosen offset basis.
func fnv64(b []byte, h uint64) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}
