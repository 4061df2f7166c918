package config

import (
	"encoding/base64"
	"encoding/binary"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/floodgate-proxy/floodgate/internal/metadata"
	"github.com/tidwall/gjson"
)

// Request is what a policy reads of a request. The plugin implements it over host calls; tests
// use a map.
type Request interface {
	// Header returns the first value of a lower-case header, pseudo-headers included.
	Header(name string) (string, bool)
	// SourceAddress returns the property source.address ("ip:port"): the downstream peer, or the
	// trusted client address Envoy took from X-Forwarded-For (xff_num_trusted_hops).
	SourceAddress() string
	// Metadata returns the property metadata: the stream's dynamic metadata, a serialized
	// envoy.config.core.v3.Metadata (nil when there is none).
	Metadata() []byte
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
// length-prefixed so that parts cannot run into each other. When a part is missing, missing is
// that part and the key is the fallback key (MissingFallback), or nil: the caller skips or
// rejects the request (MissingSkip, MissingReject).
func (p *Policy) BuildKey(r Request, dst []byte) (key []byte, missing *KeyPart) {
	key = appendPart(dst[:0], p.Name)
	for i := range p.Key {
		v, found := p.Key[i].value(r)
		if !found {
			missing = &p.Key[i]
			break
		}
		key = appendPart(key, v)
	}
	if missing != nil {
		if p.MissingKey.Action != MissingFallback {
			return nil, missing
		}
		// A policy name has no NUL: whatever a client sends, no ordinary key starts like these.
		key = appendPart(dst[:0], p.Name+"\x00fallback")
		for i := range p.MissingKey.Fallback {
			v, found := p.MissingKey.Fallback[i].value(r)
			if !found {
				key = appendPart(dst[:0], p.Name+"\x00missing")
				break
			}
			key = appendPart(key, v)
		}
	}
	if len(key) > MaxKeyBytes {
		h1, h2 := fnv64(key, 14695981039346656037), fnv64(key, 0x9ae16a3b2f90404f)
		key = binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(appendPart(dst[:0], p.Name), h1), h2)
	}
	return key, missing
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
		if k.TrustedHops > 0 {
			return xffClientIP(r, k)
		}
		return peerIP(r)
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
		if k.Metadata != "" {
			return verifiedClaim(r, k.metadataPath)
		}
		return jwtClaim(r, k.Header, k.Claim)
	case KeyConstant:
		return k.Value, true
	}
	return "", false
}

// peerIP returns the IP of source.address: the peer, or the trusted client address Envoy
// computed from X-Forwarded-For with its xff_num_trusted_hops.
func peerIP(r Request) (string, bool) {
	addr := stripPort(r.SourceAddress())
	return addr, addr != ""
}

// xffClientIP returns the client address the way Envoy computes its trusted client address
// with xff_num_trusted_hops set to k.TrustedHops (source/common/http/conn_manager_utility.cc,
// mutateRequestHeaders; source/extensions/http/original_ip_detection/xff/xff.cc): with
// use_remote_address, the N-th address from the right of X-Forwarded-For as it arrived, that is
// before Envoy appended the peer (unless skip_xff_append); without, the (N+1)-th from the right.
// Like Envoy, it falls back to the peer when X-Forwarded-For is too short or that entry is not an
// IP address.
func xffClientIP(r Request, k *KeyPart) (string, bool) {
	skip := k.TrustedHops
	if k.UseRemoteAddress {
		skip = k.TrustedHops - 1
		if !k.SkipXffAppend {
			skip++ // the address Envoy appended before any filter ran
		}
	}
	if xff, ok := r.Header("x-forwarded-for"); ok {
		if ip, ok := lastAddressFromXFF(xff, skip); ok {
			return ip, true
		}
	}
	return peerIP(r)
}

// lastAddressFromXFF returns the address that remains last in an X-Forwarded-For value once the
// last skip addresses are ignored, in canonical form, as Envoy's getLastAddressFromXFF does
// (source/common/http/utility.cc): entries are split on ",", blanks around the address are
// ignored, and the entry must be an IPv4 or IPv6 address without a port or zone.
func lastAddressFromXFF(xff string, skip int) (string, bool) {
	for ; skip > 0; skip-- {
		i := strings.LastIndexByte(xff, ',')
		if i < 0 {
			return "", false
		}
		xff = xff[:i]
	}
	if i := strings.LastIndexByte(xff, ','); i >= 0 {
		xff = xff[i+1:]
	}
	ip := strings.Trim(xff, " \t\f\v\n\r")
	if strings.IndexByte(ip, '%') >= 0 {
		return "", false // inet_pton knows no zones
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return "", false
	}
	return a.String(), true
}

// verifiedClaim reads a claim of the payload Envoy's jwt_authn verified, from the stream's dynamic
// metadata (path: the payload_in_metadata name, then the claim's segments). Strings, numbers and
// booleans make key parts; an object, a list or null is a missing part.
func verifiedClaim(r Request, path []string) (string, bool) {
	s, ok := metadata.FilterMetadata(r.Metadata(), JWTAuthnFilter)
	if !ok {
		return "", false
	}
	v, ok := s.Lookup(path...)
	if !ok {
		return "", false
	}
	switch v.Kind {
	case metadata.KindString:
		return v.String(), true
	case metadata.KindNumber:
		return strconv.FormatFloat(v.Number, 'f', -1, 64), true
	case metadata.KindBool:
		return strconv.FormatBool(v.Bool), true
	}
	return "", false
}

// jwtClaim reads a claim of the bearer token in header, WITHOUT verifying the token (see
// verifiedClaim for the payload jwt_authn verified). A token that does not decode is a missing
// part.
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
