package bootstrap

import (
	"strings"
	"testing"
)

// TestInspectFindsEveryProblemAtItsPath: what Envoy refuses in the shipped envoy.yaml, broken one
// way at a time, is reported with the path of the field, inside typed_configs as well.
func TestInspectFindsEveryProblemAtItsPath(t *testing.T) {
	const hcm = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"
	tests := []struct {
		name, old, new string
		want           []Problem
	}{
		{name: "shipped"},
		{name: "unknown field", old: "stat_prefix: ingress", new: "stat_prefix: ingress\n          stat_prefx: x",
			want: []Problem{{hcm + ".stat_prefx", `unknown field "stat_prefx"`}}},
		{name: "unresolvable typed_config", old: "envoy.extensions.filters.http.router.v3.Router", new: "envoy.extensions.filters.http.router.v3.Routr",
			want: []Problem{{hcm + ".http_filters[1].typed_config.@type", `unable to resolve "type.googleapis.com/envoy.extensions.filters.http.router.v3.Routr": "not found"`}}},
		{name: "validators, at the top and inside a typed_config", old: "connect_timeout: 1s", new: "connect_timeout: -1s",
			want: []Problem{{"static_resources.clusters[0].connect_timeout", "value must be greater than 0s"}}},
		{name: "validator inside a typed_config", old: "route: { cluster: upstream }", new: `route: { cluster: "" }`,
			want: []Problem{{hcm + ".route_config.virtual_hosts[0].routes[0].route.cluster", "value length must be at least 1 runes"}}},
		{name: "a map of scalars", old: "host_env_keys: [FLOODGATE_HELPER_TOKEN]",
			new: "host_env_keys: [FLOODGATE_HELPER_TOKEN]\n                    key_values: {LEVEL: debug}"},
		{name: "a map of messages", old: "route: { cluster: upstream }",
			new: "route: { cluster: upstream }\n                metadata: { filter_metadata: { team: { owner: a } } }"},
		{name: "yaml", old: "static_resources:", new: "static_resources: [", want: []Problem{{"", "yaml: line 10: did not find expected node content"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := shipped(t)
			if !strings.Contains(src, tc.old) {
				t.Fatalf("envoy.yaml no longer contains %q", tc.old)
			}
			in := Inspect([]byte(strings.Replace(src, tc.old, tc.new, 1)))
			if len(in.Problems) != len(tc.want) {
				t.Fatalf("problems %v, want %v", in.Problems, tc.want)
			}
			for i, p := range in.Problems {
				if p.Path != tc.want[i].Path || !strings.Contains(p.Msg, tc.want[i].Msg) {
					t.Errorf("problem %q, want %q", p, tc.want[i])
				}
			}
			if in.Raw != nil && (len(in.Filters) != 1 || in.Filters[0].Path != hcm+".http_filters[0].typed_config.config" ||
				in.Filters[0].Config.GetRootId() != "floodgate") {
				t.Fatalf("filters %+v", in.Filters)
			}
		})
	}
}

func TestGoToProtoName(t *testing.T) {
	for in, want := range map[string]string{"ConnectTimeout": "connect_timeout", "HttpFilters[0]": "http_filters[0]",
		"Http2ProtocolOptions": "http2_protocol_options", "Cluster": "cluster", "Metadata[a.B]": "metadata[a.B]"} {
		if got := goToProtoName(in); got != want {
			t.Errorf("goToProtoName(%q) = %q, want %q", in, got, want)
		}
	}
}
