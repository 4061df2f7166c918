package configcheck

import (
	"bytes"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const filter = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.config"

// TestFixtures: one fixture per broken input, each finding given in full as Write prints it
// after the file name.
func TestFixtures(t *testing.T) {
	tests := []struct {
		file     string
		kind     Kind
		findings []string
	}{
		{"plugin-syntax.json", KindPlugin, []string{
			`error: not valid JSON: line 3, column 85: want a field name in double quotes, found '}'`}},
		{"plugin-errors.json", KindPlugin, []string{
			`policies[0].limits[0].rate: error: must be > 0`,
			`policies[1].key[0].name: error: must be a string`,
			`policies[1].backend: error: "redis" needs the top-level redis section`,
			`policies[1].name: error: "per-client" is already the name of policies[0]`}},
		{"plugin-literal-token.json", KindPlugin, []string{
			`redis.token: warning: the helper's token is written in the configuration, where whoever reads it (the WasmPlugin, Envoy's config dump) reads the token: put it in the VM's environment and name it with redis.token_env`}},

		{"envoy-yaml-syntax.yaml", KindBootstrap, []string{`error: yaml: line 11: did not find expected ',' or '}'`}},
		{"envoy-unknown-field.yaml", KindBootstrap, []string{
			`static_resources.listeners[0].filter_chains[0].filters[0].typed_config.use_remote_adress: error: unknown field "use_remote_adress"`}},
		{"envoy-unknown-type.yaml", KindBootstrap, []string{
			`static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[1].typed_config.@type: error: unable to resolve "type.googleapis.com/envoy.extensions.filters.http.router.v3.Routr": "not found"`}},
		{"envoy-validator.yaml", KindBootstrap, []string{
			`static_resources.clusters[0].connect_timeout: error: value must be greater than 0s`,
			`static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.cluster: error: value length must be at least 1 runes`}},
		{"envoy-bad-plugin-config.yaml", KindBootstrap, []string{
			filter + `.configuration.value.policies[0].stratgy: error: unknown field`,
			filter + `.configuration.value.policies[0].limits[0].rate: error: must be > 0`}},
		{"envoy-token-env-missing.yaml", KindBootstrap, []string{
			filter + `.configuration.value.redis.token_env: error: FLOODGATE_HELPER_TOKEN is not in the VM's environment (vm_config.environment_variables: host_env_keys or key_values): the plugin refuses the configuration`}},
		{"envoy-unknown-helper-cluster.yaml", KindBootstrap, []string{
			filter + `.configuration.value.redis.cluster: error: "floodgate-redis-helper" is not a cluster of this bootstrap: every redis and hybrid decision would fail, and the policies' failure mode decide instead`}},
		{"envoy-configuration-not-json.yaml", KindBootstrap, []string{
			filter + `.configuration: error: a type.googleapis.com/google.protobuf.Duration reaches the plugin as protobuf bytes, not JSON: give the configuration as a google.protobuf.StringValue`}},
		{"envoy-no-floodgate.yaml", KindBootstrap, []string{
			`warning: no floodgate wasm filter, so no floodgate configuration was checked (floodgate's has root_id floodgate, a module named floodgate..., or a root_id given with -name)`}},
		{"envoy-struct-configuration.yaml", KindBootstrap, nil},

		{"k8s-yaml-syntax.yaml", KindManifests, []string{`document 2: error: yaml: line 10: did not find expected ',' or ']'`}},
		{"k8s-unknown-spec-field.yaml", KindManifests, []string{
			`document 1 (WasmPlugin istio-system/floodgate): spec.imagePulPolicy: error: unknown field "imagePulPolicy"`}},
		{"k8s-unknown-metadata-field.yaml", KindManifests, []string{
			`document 1 (WasmPlugin floodgate): error: json: unknown field "namespce"`}},
		{"k8s-proto-field-name.yaml", KindManifests, []string{
			`document 1 (WasmPlugin istio-system/floodgate): spec.fail_strategy: error: the WasmPlugin schema names this field failStrategy: the API server refuses or drops fail_strategy`}},
		{"k8s-bad-plugin-config.yaml", KindManifests, []string{
			`document 2 (WasmPlugin istio-system/floodgate): spec.pluginConfig.policies[0].key[0].trusted_hops: error: must be between 0 and 16`,
			`document 2 (WasmPlugin istio-system/floodgate): spec.pluginConfig.policies[0].limits[0].requests: error: must look like "100/m" or "10/30s" (units s, m, h, d)`}},
		{"k8s-no-plugin-config.yaml", KindManifests, []string{
			`document 1 (WasmPlugin istio-system/floodgate): spec.pluginConfig: error: the configuration is empty: at least one policy is required`}},
		{"k8s-token-env-missing.yaml", KindManifests, []string{
			`document 1 (WasmPlugin istio-system/floodgate): spec.pluginConfig.redis.token_env: error: FLOODGATE_HELPER_TOKEN is not in the VM's environment (spec.vmConfig.env): the plugin refuses the configuration`}},
		{"k8s-server-mode-on-gateway.yaml", KindManifests, []string{
			`document 1 (WasmPlugin istio-system/floodgate): spec.match[0].mode: warning: SERVER, and the selector looks like a gateway's: Istio counts a gateway's listeners as CLIENT traffic, so the plugin is attached to none of them (use CLIENT or CLIENT_AND_SERVER)`}},
		{"k8s-literal-token.yaml", KindManifests, []string{
			`document 1 (WasmPlugin istio-system/floodgate): spec.pluginConfig.redis.token: warning: the helper's token is written in the configuration, where whoever reads it (the WasmPlugin, Envoy's config dump) reads the token: put it in the VM's environment and name it with redis.token_env`}},
		{"k8s-inline-token.yaml", KindManifests, []string{
			`document 1 (WasmPlugin istio-system/floodgate): spec.vmConfig.env[0]: warning: the helper's token is written in the WasmPlugin: use valueFrom: HOST, the proxy's own environment, which a Secret can feed`}},
		{"k8s-redis-cluster-name.yaml", KindManifests, []string{
			`document 1 (WasmPlugin istio-system/floodgate): spec.pluginConfig.redis.cluster: warning: "floodgate-redis-helper": in Istio the cluster of a Service is named outbound|PORT||HOST (outbound|8379||floodgate-redis-helper.istio-system.svc.cluster.local); another name is a cluster only if an EnvoyFilter adds it`}},
		{"k8s-other-plugin.yaml", KindManifests, nil},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		seen[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			r := Check(tc.file, data, Options{})
			if r.Kind != tc.kind {
				t.Errorf("kind %q, want %q", r.Kind, tc.kind)
			}
			var got []string
			for _, f := range r.Findings {
				got = append(got, f.String())
			}
			if !slices.Equal(got, tc.findings) {
				t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.findings, "\n"))
			}
			wantErrors := 0
			for _, f := range tc.findings {
				if strings.HasPrefix(f, "error: ") || strings.Contains(f, ": error: ") {
					wantErrors++
				}
			}
			if r.Errors() != wantErrors {
				t.Errorf("Errors() = %d, want %d", r.Errors(), wantErrors)
			}
		})
	}
	files, _ := filepath.Glob("testdata/*")
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s is in no test", f)
		}
	}
}

// TestShippedConfigurations: every configuration this repository ships passes, with nothing to
// warn about, and every floodgate configuration in it is found.
func TestShippedConfigurations(t *testing.T) {
	tests := []struct {
		file    string
		checked int
	}{
		{"../../envoy.yaml", 1},
		{"../../deploy/local/envoy-redis.yaml", 1},
		{"../../deploy/local/envoy-hybrid.yaml", 1},
		{"../../deploy/istio/wasmplugin.yaml", 1},
		{"../../deploy/istio/redis-helper.yaml", 0},
		{"../../deploy/istio/redis.yaml", 0},
		{"../../deploy/istio/requestauthentication.yaml", 0},
		{"../../deploy/istio/gateway-token-patch.yaml", 0},
	}
	for _, tc := range tests {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			data, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			r := Check(tc.file, data, Options{})
			if len(r.Findings) > 0 || len(r.Checked) != tc.checked {
				var out bytes.Buffer
				r.Write(&out)
				t.Fatalf("want no finding and %d checked:\n%s", tc.checked, out.String())
			}
		})
	}
}

// TestNames: -name makes a filter of another root_id floodgate's.
func TestNames(t *testing.T) {
	data, err := os.ReadFile("testdata/envoy-no-floodgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if r := Check("f", data, Options{Names: []string{"edge"}}); len(r.Findings) != 0 || len(r.Checked) != 1 {
		t.Fatalf("findings %v, checked %v", r.Findings, r.Checked)
	}
}

// TestEnvoyTypesAreAllLinked: envoytypes.go imports every package of go-control-plane its comment
// promises, so that no extension's typed_config is refused for being unknown here.
func TestEnvoyTypesAreAllLinked(t *testing.T) {
	out, err := exec.Command("go", "list", "-e", "-f", "{{.ImportPath}}{{if .DepsErrors}} unbuildable{{end}}",
		"github.com/envoyproxy/go-control-plane/envoy/...").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), "envoytypes.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	linked := map[string]bool{}
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		linked[p] = true
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, unbuildable := strings.CutSuffix(line, " unbuildable")
		dir, _ := strings.CutPrefix(pkg, "github.com/envoyproxy/go-control-plane/envoy/")
		top, _, _ := strings.Cut(dir, "/")
		wanted := slices.Contains([]string{"config", "extensions", "type", "data", "watchdog"}, top) &&
			(strings.HasSuffix(dir, "/v3") || strings.HasSuffix(dir, "/v3alpha")) && !unbuildable
		if wanted != linked[pkg] {
			t.Errorf("envoytypes.go: want %v for\n\t_ %q", wanted, pkg)
		}
	}
}
