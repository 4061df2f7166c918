package config

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// KeyType is the source of one part of a key.
type KeyType string

// Key sources.
const (
	KeyHeader   KeyType = "header"
	KeyClientIP KeyType = "client_ip"
	KeyPath     KeyType = "path"
	KeyMethod   KeyType = "method"
	KeyQuery    KeyType = "query"
	KeyJWTClaim KeyType = "jwt_claim"
	KeyConstant KeyType = "constant"
)

// JWTAuthnFilter is the dynamic-metadata namespace where Envoy's jwt_authn filter puts the
// payloads it verified (with payload_in_metadata set).
const JWTAuthnFilter = "envoy.filters.http.jwt_authn"

// KeyPart is one source of a policy's key.
type KeyPart struct {
	Type KeyType
	// Name is the header (header) or query parameter (query).
	Name string
	// TrustedHops (client_ip): 0 takes source.address, the trusted client address Envoy computed
	// (with its own xff_num_trusted_hops). N > 0 takes the client address from X-Forwarded-For the
	// way Envoy would with xff_num_trusted_hops N, under Envoy's UseRemoteAddress (default true)
	// and SkipXffAppend (default false): when Envoy appended the peer, that address is skipped.
	TrustedHops      int
	UseRemoteAddress bool
	SkipXffAppend    bool
	// Claim (jwt_claim) is a dotted path into a JWT payload ("\." for a dot in a claim name): the
	// payload jwt_authn verified and put in dynamic metadata under Metadata (its
	// payload_in_metadata), or, when Header is set instead, the bearer token of that header, read
	// without verification.
	Claim, Header, Metadata string
	// metadataPath is Metadata followed by the claim's segments: the path in jwt_authn's struct.
	metadataPath []string
	// Value is the constant.
	Value string
}

// String names the part in logs: its type and what it reads.
func (k *KeyPart) String() string {
	switch k.Type {
	case KeyHeader, KeyQuery:
		return string(k.Type) + " " + strconv.Quote(k.Name)
	case KeyClientIP:
		if k.TrustedHops > 0 {
			return "client_ip (x-forwarded-for, " + strconv.Itoa(k.TrustedHops) + " trusted hops)"
		}
		return "client_ip (source.address)"
	case KeyJWTClaim:
		if k.Metadata != "" {
			return "jwt_claim " + strconv.Quote(k.Claim) + " (verified payload " + strconv.Quote(k.Metadata) + ")"
		}
		return "jwt_claim " + strconv.Quote(k.Claim) + " (header " + strconv.Quote(k.Header) + ")"
	}
	return string(k.Type)
}

// MissingAction is what a policy does with a request lacking a part of its key.
type MissingAction uint8

// Missing-key actions.
const (
	// MissingFallback counts the request under a fallback key built from other sources (by
	// default the client IP), with the policy's limits: no credential, malformed or absent, lets a
	// client leave the limit.
	MissingFallback MissingAction = iota
	// MissingSkip leaves the request unlimited by this policy.
	MissingSkip
	// MissingReject answers the request with MissingKey.Status.
	MissingReject
)

// MissingKey says what to do when a key part is missing from the request (a malformed
// credential, such as a token that does not decode, is a missing part).
type MissingKey struct {
	Action MissingAction
	// Fallback is the fallback key's sources (MissingFallback). When one of them is missing too,
	// the request counts under one key shared by every such request.
	Fallback []KeyPart
	// Status answers a rejected request (MissingReject).
	Status uint32
}

// DefaultMissingStatus answers requests a "reject" missing_key refuses.
const DefaultMissingStatus = 400

var keyTypes = []string{"header", "client_ip", "path", "method", "query", "jwt_claim", "constant"}

// keyParts parses an array of key sources.
func (p *parser) keyParts(v gjson.Result, path string) []KeyPart {
	if !v.Exists() {
		p.errf(path, "is required")
		return nil
	}
	if n := boundedLen(v, MaxKeyParts); !v.IsArray() || n == 0 || n > MaxKeyParts {
		p.errf(path, "must be an array of 1 to %d key sources", MaxKeyParts)
		return nil
	}
	var parts []KeyPart
	for i, kv := range v.Array() {
		kp := index(path, i)
		if !kv.IsObject() {
			p.errf(kp, "must be an object")
			continue
		}
		typ, ok := p.oneOf(kv.Get("type"), join(kp, "type"), keyTypes...)
		if !ok {
			continue
		}
		part := KeyPart{Type: KeyType(typ)}
		switch part.Type {
		case KeyHeader:
			p.object(kv, kp, "type", "name")
			part.Name, _ = p.headerName(kv.Get("name"), join(kp, "name"))
		case KeyQuery:
			p.object(kv, kp, "type", "name")
			if name, ok := p.str(kv.Get("name"), join(kp, "name")); ok && name != "" {
				part.Name = name
			} else if ok {
				p.errf(join(kp, "name"), "must not be empty")
			}
		case KeyClientIP:
			p.clientIP(kv, kp, &part)
		case KeyPath, KeyMethod:
			p.object(kv, kp, "type")
		case KeyJWTClaim:
			p.jwtClaim(kv, kp, &part)
		case KeyConstant:
			p.object(kv, kp, "type", "value")
			if s, ok := p.str(kv.Get("value"), join(kp, "value")); ok {
				part.Value = s
			}
		}
		parts = append(parts, part)
	}
	return parts
}

func (p *parser) clientIP(v gjson.Result, path string, part *KeyPart) {
	p.object(v, path, "type", "trusted_hops", "use_remote_address", "skip_xff_append")
	part.UseRemoteAddress = true
	if h := v.Get("trusted_hops"); h.Exists() {
		if n, ok := p.integer(h, join(path, "trusted_hops"), 0, 16); ok {
			part.TrustedHops = int(n)
		}
	}
	for _, f := range []struct {
		name string
		dst  *bool
	}{{"use_remote_address", &part.UseRemoteAddress}, {"skip_xff_append", &part.SkipXffAppend}} {
		fv := v.Get(f.name)
		if !fv.Exists() {
			continue
		}
		*f.dst = p.boolean(fv, join(path, f.name))
		if part.TrustedHops == 0 {
			p.errf(join(path, f.name), "applies with trusted_hops only: without it the key is source.address, the client address Envoy computed")
		}
	}
	if part.SkipXffAppend && !part.UseRemoteAddress {
		p.errf(join(path, "skip_xff_append"), "applies with use_remote_address true only: without it Envoy never appends to X-Forwarded-For")
	}
}

func (p *parser) jwtClaim(v gjson.Result, path string, part *KeyPart) {
	p.object(v, path, "type", "claim", "header", "metadata")
	if c, ok := p.str(v.Get("claim"), join(path, "claim")); ok && c != "" {
		part.Claim = c
	} else if ok {
		p.errf(join(path, "claim"), "must not be empty")
	}
	h, m := v.Get("header"), v.Get("metadata")
	switch {
	case h.Exists() && m.Exists():
		p.errf(path, "give one of metadata, header")
	case m.Exists():
		if s, ok := p.str(m, join(path, "metadata")); ok && s != "" {
			part.Metadata = s
			part.metadataPath = append([]string{s}, splitClaim(part.Claim)...)
		} else if ok {
			p.errf(join(path, "metadata"), "must not be empty")
		}
	case h.Exists():
		part.Header, _ = p.headerName(h, join(path, "header"))
	default:
		p.errf(path, `needs "metadata" (the payload_in_metadata name under which Envoy's jwt_authn put the payload it verified; Istio's RequestAuthentication: "payload") or "header" (a bearer token read WITHOUT verification): behind jwt_authn the token is usually removed from the request (forward: false), so say where the claim comes from`)
	}
}

// splitClaim splits a dotted claim path; "\." is a dot inside a claim name.
func splitClaim(claim string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(claim); i++ {
		switch {
		case claim[i] == '\\' && i+1 < len(claim) && claim[i+1] == '.':
			cur.WriteByte('.')
			i++
		case claim[i] == '.':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(claim[i])
		}
	}
	return append(out, cur.String())
}

// missingKey parses a policy's missing_key; absent, the request falls back to the client IP.
func (p *parser) missingKey(v gjson.Result, path string) MissingKey {
	mk := MissingKey{Action: MissingFallback, Fallback: []KeyPart{{Type: KeyClientIP, UseRemoteAddress: true}}}
	if !v.Exists() || !p.object(v, path, "action", "key", "value", "status") {
		return mk
	}
	action, ok := p.oneOf(v.Get("action"), join(path, "action"), "fallback", "skip", "reject")
	if !ok {
		return mk
	}
	key, value, status := v.Get("key"), v.Get("value"), v.Get("status")
	for _, f := range []struct {
		name   string
		v      gjson.Result
		action string
	}{{"key", key, "fallback"}, {"value", value, "fallback"}, {"status", status, "reject"}} {
		if f.v.Exists() && action != f.action {
			p.errf(join(path, f.name), "applies to the %s action only", f.action)
		}
	}
	switch action {
	case "skip":
		mk.Action = MissingSkip
	case "reject":
		mk.Action, mk.Status = MissingReject, DefaultMissingStatus
		if status.Exists() {
			if n, ok := p.integer(status, join(path, "status"), 400, 599); ok {
				mk.Status = uint32(n)
			}
		}
	case "fallback":
		switch {
		case key.Exists() && value.Exists():
			p.errf(path, "give one of key, value")
		case key.Exists():
			mk.Fallback = p.keyParts(key, join(path, "key"))
		case value.Exists():
			if s, ok := p.str(value, join(path, "value")); ok {
				mk.Fallback = []KeyPart{{Type: KeyConstant, Value: s}}
			}
		}
	}
	return mk
}
