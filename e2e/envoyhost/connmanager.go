package envoyhost

import (
	"net/netip"
	"strings"

	"github.com/floodgate-proxy/floodgate/internal/bootstrap"
)

// This file models what Envoy's HTTP connection manager does to a request before any HTTP filter
// runs, as far as the client's address is concerned: the plugin sees the headers and the
// source.address property this leaves. It follows
//   - source/common/http/conn_manager_utility.cc, ConnectionManagerUtility::mutateRequestHeaders,
//     and conn_manager_impl.cc, which makes its result the stream's downstream remote address
//     (setDownstreamRemoteAddress), the address the source.address property returns
//     (source/extensions/filters/common/expr/context.cc, PeerWrapper);
//   - source/common/http/utility.cc, getLastAddressFromXFF and appendXff;
//   - source/extensions/http/original_ip_detection/xff/xff.cc, the default detection used when
//     use_remote_address is false (Envoy builds it from xff_num_trusted_hops);
//   - the docs page configuration/http/http_conn_man/headers, "x-forwarded-for", whose worked
//     examples connmanager_test.go replays.
// TLS is not modelled (x-forwarded-proto is always http), nor the other headers the connection
// manager sanitizes, nor original_ip_detection_extensions (bootstrap refuses them).

// ConnResult is what the connection manager leaves for the filters.
type ConnResult struct {
	// Headers are the request headers the filters see.
	Headers [][2]string
	// Remote is the trusted client address: the property source.address ("ip:port"; port 0
	// when the address came from X-Forwarded-For).
	Remote netip.AddrPort
}

// MutateRequest applies the connection manager cm to a request from peer with headers (lower-case
// names, as the codec delivers them). local is the address Envoy appends to X-Forwarded-For for a
// loopback peer: the node's address (local_info).
func MutateRequest(cm bootstrap.ConnManager, local netip.Addr, peer netip.AddrPort, headers [][2]string) ConnResult {
	h := mergeXFF(headers)
	// Proxy headers a client must not set are removed first (removeEnvoyInternalRequest).
	h = removeHeader(h, "x-envoy-internal")

	xff, hasXFF := firstValue(h, "x-forwarded-for")
	var final netip.Addr // from X-Forwarded-For; invalid: the connection's address
	var allowTrustedChecks bool
	if cm.UseRemoteAddress {
		allowTrustedChecks = !hasXFF
		// Behind trusted proxies the trusted client address comes from X-Forwarded-For, before
		// the append below: the N-th address from the right.
		// Without (or with too short a header) the trusted client address is the peer.
		if cm.XffNumTrustedHops > 0 && hasXFF {
			final, _ = lastAddressFromXFF(xff, int(cm.XffNumTrustedHops)-1)
		}
		if !cm.SkipXffAppend {
			appended := peer.Addr()
			if appended.IsLoopback() {
				appended = local // Envoy appends its own address for a loopback peer
			}
			h = appendXFF(h, appended.String())
		}
		// Only trusted proxies may set x-forwarded-proto.
		if _, ok := firstValue(h, "x-forwarded-proto"); cm.XffNumTrustedHops == 0 || !ok {
			h = setHeader(h, "x-forwarded-proto", "http")
		}
	} else if hasXFF {
		// Envoy's default original IP detection (the XFF extension with xff_num_trusted_hops):
		// the (N+1)-th address from the right; a single address allows the internal checks.
		var single bool
		final, single = lastAddressFromXFF(xff, int(cm.XffNumTrustedHops))
		allowTrustedChecks = final.IsValid() && single && cm.XffNumTrustedHops == 0
	}
	if _, ok := firstValue(h, "x-forwarded-proto"); !ok {
		h = setHeader(h, "x-forwarded-proto", "http")
	}
	remote := peer // the connection's address, with its port
	if final.IsValid() {
		remote = netip.AddrPortFrom(final, 0) // an address parsed from X-Forwarded-For has port 0
	}
	internal := allowTrustedChecks && isInternal(cm, remote.Addr())
	edge := !internal && cm.UseRemoteAddress
	if internal {
		h = setHeader(h, "x-envoy-internal", "true")
	}
	// The first point of entry into the trusted network records the client's address.
	if edge {
		h = setHeader(h, "x-envoy-external-address", remote.Addr().String())
	}
	return ConnResult{Headers: h, Remote: remote}
}

// lastAddressFromXFF is Envoy's getLastAddressFromXFF: drop the last skip entries, take the last
// remaining one, trim blanks, and parse it as an IP address (no port, no zone). single reports a
// header holding that one address and nothing skipped. The plugin has its own (config/keys.go),
// written apart on purpose: the e2e tests compare the two.
func lastAddressFromXFF(xff string, skip int) (a netip.Addr, single bool) {
	for i := 0; i < skip; i++ {
		c := strings.LastIndex(xff, ",")
		if c < 0 {
			return netip.Addr{}, false
		}
		xff = xff[:c]
	}
	c := strings.LastIndex(xff, ",")
	if c >= 0 && c+1 < len(xff) {
		xff = xff[c+1:]
	}
	a, err := netip.ParseAddr(strings.Trim(xff, " \t\f\v\n\r"))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, c < 0 && skip == 0
}

// isInternal: an address is internal only when internal_address_config lists it (Envoy >= 1.33;
// before, RFC 1918 and RFC 4193 addresses were internal by default).
func isInternal(cm bootstrap.ConnManager, a netip.Addr) bool {
	for _, p := range cm.InternalAddresses {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// mergeXFF joins several X-Forwarded-For headers into the first, comma-separated, as Envoy's
// header map does for inline headers (source/common/http/header_map_impl.cc: a repeated inline
// header is appended to the first with "," as the delimiter). x-forwarded-for is inline; the
// other inline headers are not merged here.
func mergeXFF(headers [][2]string) [][2]string {
	out := make([][2]string, 0, len(headers)+3)
	at := -1
	for _, kv := range headers {
		if kv[0] == "x-forwarded-for" && at >= 0 {
			if out[at][1] == "" {
				out[at][1] = kv[1]
			} else if kv[1] != "" {
				out[at][1] += "," + kv[1]
			}
			continue
		}
		if kv[0] == "x-forwarded-for" {
			at = len(out)
		}
		out = append(out, kv)
	}
	return out
}

// appendXFF appends addr to X-Forwarded-For with "," (appendXff: appendForwardedFor(addr, ",")).
func appendXFF(h [][2]string, addr string) [][2]string {
	for i := range h {
		if h[i][0] == "x-forwarded-for" {
			if h[i][1] == "" {
				h[i][1] = addr
			} else {
				h[i][1] += "," + addr
			}
			return h
		}
	}
	return append(h, [2]string{"x-forwarded-for", addr})
}

func firstValue(h [][2]string, name string) (string, bool) {
	for _, kv := range h {
		if kv[0] == name {
			return kv[1], true
		}
	}
	return "", false
}

func setHeader(h [][2]string, name, value string) [][2]string {
	return append(removeHeader(h, name), [2]string{name, value})
}

func removeHeader(h [][2]string, name string) [][2]string {
	out := h[:0]
	for _, kv := range h {
		if kv[0] != name {
			out = append(out, kv)
		}
	}
	return out
}
