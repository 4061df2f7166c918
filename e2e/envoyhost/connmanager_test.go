package envoyhost

import (
	"net/netip"
	"testing"

	"github.com/floodgate-proxy/floodgate/internal/bootstrap"
)

// rfc1918 are the addresses Envoy took as internal by default before 1.33, when its docs'
// examples were written; since 1.33 they must be listed in internal_address_config.
var rfc1918 = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("fc00::/7")}

// TestConnManagerFollowsEnvoysExamples replays, one row each, the worked examples of Envoy's docs
// (configuration/http/http_conn_man/headers, "x-forwarded-for", examples 1 to 6), then the cases
// the plugin's client_ip key depends on. Where the docs and the code differ, the row follows the
// code (conn_manager_utility.cc) and says so.
func TestConnManagerFollowsEnvoysExamples(t *testing.T) {
	const xff3 = "203.0.113.128, 203.0.113.10, 203.0.113.1"
	tests := []struct {
		name    string
		cm      bootstrap.ConnManager
		peer    string
		headers [][2]string
		// What the filters see: source.address, X-Forwarded-For, x-envoy-external-address and
		// x-envoy-internal ("" = absent).
		remote, xff, external, internal string
	}{
		{
			// The docs write the appended address after ", "; appendXff joins with ",".
			name: "example 1: edge proxy without a trusted proxy in front",
			cm:   bootstrap.ConnManager{UseRemoteAddress: true}, peer: "192.0.2.5:40000",
			headers: [][2]string{{"x-forwarded-for", xff3}, {"x-envoy-internal", "true"}},
			remote:  "192.0.2.5:40000", xff: xff3 + ",192.0.2.5", external: "192.0.2.5",
		},
		{
			name: "example 2: internal proxy behind the edge proxy of example 1",
			cm:   bootstrap.ConnManager{}, peer: "10.11.12.13:40000",
			headers: [][2]string{{"x-forwarded-for", xff3 + ", 192.0.2.5"}, {"x-envoy-external-address", "192.0.2.5"}, {"x-envoy-internal", "true"}},
			remote:  "192.0.2.5:0", xff: xff3 + ", 192.0.2.5", external: "192.0.2.5",
		},
		{
			name: "example 3: edge proxy with two trusted external proxies in front",
			cm:   bootstrap.ConnManager{UseRemoteAddress: true, XffNumTrustedHops: 2}, peer: "192.0.2.5:40000",
			headers: [][2]string{{"x-forwarded-for", xff3}},
			remote:  "203.0.113.10:0", xff: xff3 + ",192.0.2.5", external: "203.0.113.10",
		},
		{
			name: "example 4: internal proxy behind the edge proxy of example 3",
			cm:   bootstrap.ConnManager{XffNumTrustedHops: 2}, peer: "10.11.12.13:40000",
			headers: [][2]string{{"x-forwarded-for", xff3 + ", 192.0.2.5"}, {"x-envoy-external-address", "203.0.113.10"}},
			remote:  "203.0.113.10:0", xff: xff3 + ", 192.0.2.5", external: "203.0.113.10",
		},
		{
			// The docs say x-envoy-internal is set to "false"; the code never writes "false": the
			// header is removed and, the request not being internal, not set.
			name: "example 5: internal proxy, request from an internal client",
			cm:   bootstrap.ConnManager{InternalAddresses: rfc1918}, peer: "10.20.30.40:40000",
			remote: "10.20.30.40:40000",
		},
		{
			name: "example 6: the internal proxy of example 5, request proxied by another Envoy",
			cm:   bootstrap.ConnManager{InternalAddresses: rfc1918}, peer: "10.20.30.50:40000",
			headers: [][2]string{{"x-forwarded-for", "10.20.30.40"}},
			remote:  "10.20.30.40:0", xff: "10.20.30.40", internal: "true",
		},
		{
			name: "several X-Forwarded-For headers reach filters as one",
			cm:   bootstrap.ConnManager{UseRemoteAddress: true, XffNumTrustedHops: 1}, peer: "10.9.9.9:1",
			headers: [][2]string{{"x-forwarded-for", "6.6.6.6"}, {"x-forwarded-for", "1.1.1.1, 7.7.7.7"}},
			remote:  "7.7.7.7:0", xff: "6.6.6.6,1.1.1.1, 7.7.7.7,10.9.9.9", external: "7.7.7.7",
		},
		{
			name: "skip_xff_append leaves X-Forwarded-For alone",
			cm:   bootstrap.ConnManager{UseRemoteAddress: true, XffNumTrustedHops: 1, SkipXffAppend: true}, peer: "10.9.9.9:1",
			headers: [][2]string{{"x-forwarded-for", "1.1.1.1"}},
			remote:  "1.1.1.1:0", xff: "1.1.1.1", external: "1.1.1.1",
		},
		{
			name: "trusted hops with too short a header: the peer",
			cm:   bootstrap.ConnManager{UseRemoteAddress: true, XffNumTrustedHops: 2}, peer: "198.51.100.4:1",
			headers: [][2]string{{"x-forwarded-for", "1.1.1.1"}},
			remote:  "198.51.100.4:1", xff: "1.1.1.1,198.51.100.4", external: "198.51.100.4",
		},
		{
			name: "a loopback peer is appended as Envoy's own address",
			cm:   bootstrap.ConnManager{UseRemoteAddress: true}, peer: "127.0.0.1:5555",
			remote: "127.0.0.1:5555", xff: "192.0.2.200", external: "127.0.0.1",
		},
		{
			name: "without XFF an internal peer is internal (when listed)",
			cm:   bootstrap.ConnManager{UseRemoteAddress: true, InternalAddresses: rfc1918}, peer: "10.1.1.1:1",
			remote: "10.1.1.1:1", xff: "10.1.1.1", internal: "true",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := MutateRequest(tc.cm, netip.MustParseAddr("192.0.2.200"), netip.MustParseAddrPort(tc.peer), tc.headers)
			if got := res.Remote.String(); got != tc.remote {
				t.Errorf("source.address %s, want %s", got, tc.remote)
			}
			for _, h := range []struct{ name, want string }{
				{"x-forwarded-for", tc.xff}, {"x-envoy-external-address", tc.external}, {"x-envoy-internal", tc.internal},
			} {
				got, ok := firstValue(res.Headers, h.name)
				if got != h.want || ok != (h.want != "") {
					t.Errorf("%s = %q (present %v), want %q", h.name, got, ok, h.want)
				}
			}
			n := 0
			for _, kv := range res.Headers {
				if kv[0] == "x-forwarded-for" {
					n++
				}
			}
			if n > 1 {
				t.Errorf("%d x-forwarded-for headers: filters see one", n)
			}
		})
	}
}
