package bootstrap

import (
	"maps"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/floodgate-proxy/floodgate/config"
)

func shipped(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestShippedEnvoyYAML(t *testing.T) {
	b, err := Load("../../envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if b.Listener != "127.0.0.1:10000" || b.Route != "upstream" || b.Clusters["upstream"] != "127.0.0.1:8080" ||
		b.Clusters["floodgate-redis-helper"] != "127.0.0.1:8379" {
		t.Fatalf("bootstrap %+v", b)
	}
	f := b.Filter
	if f.Name != "floodgate" || f.RootID != "floodgate" || f.VMID != "floodgate" || f.Runtime != "envoy.wasm.runtime.v8" || f.Code != "plugin.wasm" || f.FailOpen {
		t.Fatalf("wasm filter %+v", f)
	}
	// The plugin configuration shipped to users passes the plugin's own validation.
	cfg, err := config.Parse([]byte(f.Configuration))
	if err != nil {
		t.Fatalf("the shipped plugin configuration is invalid:\n%v", err)
	}
	if len(cfg.Policies) != 2 {
		t.Fatalf("%d policies", len(cfg.Policies))
	}
}

func TestBrokenBootstraps(t *testing.T) {
	tests := []struct {
		name, old, new, want string
	}{
		{name: "unknown field", old: "stat_prefix: ingress", new: "stat_prefix: ingress\n          stat_prefx: x", want: `unknown field "stat_prefx"`},
		{name: "unresolvable typed_config", old: "envoy.extensions.filters.http.router.v3.Router", new: "envoy.extensions.filters.http.router.v3.Routr", want: "Routr"},
		{name: "validator: empty route cluster", old: "route: { cluster: upstream }", new: `route: { cluster: "" }`, want: "invalid"},
		{name: "validator: negative timeout", old: "connect_timeout: 1s", new: "connect_timeout: -1s", want: "ConnectTimeout"},
		{name: "cluster without a socket address", old: "socket_address: { address: 127.0.0.1, port_value: 8080 }", new: "pipe: { path: /tmp/upstream.sock }", want: "clusters[0] upstream: only socket addresses are supported"},
		{name: "route to a missing cluster", old: "route: { cluster: upstream }", new: "route: { cluster: nowhere }", want: `cluster "nowhere", which is not defined`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := shipped(t)
			if !strings.Contains(src, tc.old) {
				t.Fatalf("envoy.yaml no longer contains %q", tc.old)
			}
			_, err := Parse([]byte(strings.Replace(src, tc.old, tc.new, 1)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// wasmBlock is the wasm filter's entry in the shipped http_filters list.
func wasmBlock(t *testing.T, src string) string {
	t.Helper()
	start := strings.Index(src, "          - name: envoy.filters.http.wasm\n")
	end := strings.Index(src, "          - name: envoy.filters.http.router\n")
	if start < 0 || end < start {
		t.Fatal("envoy.yaml no longer lists the wasm filter before the router")
	}
	return src[start:end]
}

func TestUnsupportedShapes(t *testing.T) {
	tests := []struct {
		name string
		edit func(t *testing.T, src string) string
		want string
	}{
		{name: "no wasm filter", edit: func(t *testing.T, src string) string {
			return strings.Replace(src, wasmBlock(t, src), "", 1)
		}, want: "want exactly one wasm filter, found 0"},
		{name: "two wasm filters", edit: func(t *testing.T, src string) string {
			w := wasmBlock(t, src)
			return strings.Replace(src, w, w+w, 1)
		}, want: "want exactly one wasm filter, found 2"},
		{name: "no listener", edit: func(t *testing.T, src string) string {
			i, j := strings.Index(src, "  listeners:\n"), strings.Index(src, "  clusters:\n")
			if i < 0 || j < i {
				t.Fatal("envoy.yaml no longer has listeners before clusters")
			}
			return src[:i] + src[j:]
		}, want: "bootstrap: no listener"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.edit(t, shipped(t))))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestVMEnvironment: vm_config.environment_variables become the VM's environment as Envoy builds
// it: host_env_keys from this process's environment (an unset one left out), key_values as given,
// a key in both refused.
func TestVMEnvironment(t *testing.T) {
	const hostKeys = "host_env_keys: [FLOODGATE_HELPER_TOKEN]"
	src := shipped(t)
	if !strings.Contains(src, hostKeys) {
		t.Fatalf("envoy.yaml no longer has %q", hostKeys)
	}
	withKeyValues := strings.Replace(src, hostKeys, hostKeys+"\n                    key_values: {GOGC: \"50\"}", 1)
	for _, tc := range []struct {
		name, src, token string
		set              bool
		want             map[string]string
		fails            string
	}{
		{name: "the token from the process", src: src, token: "abc", set: true, want: map[string]string{"FLOODGATE_HELPER_TOKEN": "abc"}},
		{name: "unset in the process", src: src, want: map[string]string{}},
		{name: "key_values too", src: withKeyValues, token: "abc", set: true, want: map[string]string{"FLOODGATE_HELPER_TOKEN": "abc", "GOGC": "50"}},
		{name: "a key twice", src: strings.Replace(src, hostKeys, hostKeys+"\n                    key_values: {FLOODGATE_HELPER_TOKEN: x}", 1),
			fails: "all the keys must be unique"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("FLOODGATE_HELPER_TOKEN", tc.token)
			if !tc.set {
				os.Unsetenv("FLOODGATE_HELPER_TOKEN")
			}
			b, err := Parse([]byte(tc.src))
			if tc.fails != "" {
				if err == nil || !strings.Contains(err.Error(), tc.fails) {
					t.Fatalf("err = %v, want %q", err, tc.fails)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(b.Filter.Env, tc.want) {
				t.Fatalf("env %v, want %v", b.Filter.Env, tc.want)
			}
		})
	}
}

// TestConnManager reads the connection manager's client-address settings from envoy.yaml.
func TestConnManager(t *testing.T) {
	const hcm = "          use_remote_address: true\n          xff_num_trusted_hops: 0\n"
	tests := []struct {
		name, new string
		want      ConnManager
		err       string
	}{
		{name: "shipped", new: hcm, want: ConnManager{UseRemoteAddress: true}},
		{name: "Envoy's defaults", new: "", want: ConnManager{}},
		{name: "trusted hops, no append, internal ranges", new: "          use_remote_address: true\n          xff_num_trusted_hops: 2\n          skip_xff_append: true\n" +
			"          internal_address_config:\n            cidr_ranges:\n            - {address_prefix: 10.1.2.3, prefix_len: 8}\n            - {address_prefix: \"fd00::\", prefix_len: 8}\n",
			want: ConnManager{UseRemoteAddress: true, XffNumTrustedHops: 2, SkipXffAppend: true,
				InternalAddresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}},
		{name: "original ip detection extensions are refused", new: "          original_ip_detection_extensions:\n          - name: envoy.http.original_ip_detection.xff\n" +
			"            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.http.original_ip_detection.xff.v3.XffConfig\n              xff_num_trusted_hops: 1\n",
			err: "the gateway does not model original_ip_detection_extensions"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := shipped(t)
			if !strings.Contains(src, hcm) {
				t.Fatalf("envoy.yaml no longer contains %q", hcm)
			}
			b, err := Parse([]byte(strings.Replace(src, hcm, tc.new, 1)))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(b.ConnManager, tc.want) {
				t.Fatalf("got %+v, want %+v", b.ConnManager, tc.want)
			}
		})
	}
}
