package istiotest

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	envoycore "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	jwtauthn "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	httpwasm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	extensionsv1alpha1 "istio.io/api/extensions/v1alpha1"
	securityv1beta1 "istio.io/api/security/v1beta1"
	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/config/kube/extensions"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/networking/core"
	authnmodel "istio.io/istio/pilot/pkg/security/model"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/schema/gvk"
	"istio.io/istio/pkg/config/validation"
	"istio.io/istio/pkg/wellknown"

	floodgateconfig "github.com/floodgate-proxy/floodgate/config"
)

// The manifests floodgate ships for Istio, and the test's stand-in for the user's Gateway.
const (
	wasmPluginFile   = "../wasmplugin.yaml"
	requestAuthFile  = "../requestauthentication.yaml"
	gatewayFixture   = "testdata/gateway.yaml"
	ingressNamespace = "istio-system"
)

// ingressLabels are the labels of Istio's default ingress gateway pods, which the manifests select.
var ingressLabels = map[string]string{"istio": "ingressgateway"}

// read returns a file's text.
func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// parse reads YAML documents the way istioctl and the admission webhook do: crd.ParseInputs
// converts each object into Istio's config model and runs the kind's validation, failing on
// the first invalid object. Every document must be a kind Istio knows.
func parse(t *testing.T, docs ...string) []config.Config {
	t.Helper()
	cfgs, unknown, err := crd.ParseInputs(strings.Join(docs, "\n---\n"))
	if err != nil {
		t.Fatalf("Istio refuses the manifests: %v", err)
	}
	if len(unknown) != 0 {
		t.Fatalf("kinds Istio does not know: %v", unknown)
	}
	return cfgs
}

// shipped returns the shipped WasmPlugin (after edit, which may change its text) and
// RequestAuthentication, and the Gateway fixture, as Istio parses them.
func shipped(t *testing.T, edit func(wasmPlugin string) string) []config.Config {
	t.Helper()
	wp := read(t, wasmPluginFile)
	if edit != nil {
		wp = edit(wp)
	}
	return parse(t, wp, read(t, requestAuthFile), read(t, gatewayFixture))
}

func TestShippedManifestsPassIstioValidation(t *testing.T) {
	cfgs := shipped(t, nil)
	kinds := map[config.GroupVersionKind]int{}
	for _, c := range cfgs {
		kinds[c.GroupVersionKind]++
		var warn validation.Warning
		var err error
		switch c.GroupVersionKind.Kind {
		case gvk.WasmPlugin.Kind:
			warn, err = validation.ValidateWasmPlugin(c)
		case gvk.RequestAuthentication.Kind:
			warn, err = validation.ValidateRequestAuthentication(c)
		default:
			continue
		}
		if err != nil || warn != nil {
			t.Errorf("%s %s: error %v, warning %v", c.GroupVersionKind.Kind, c.Name, err, warn)
		}
	}
	if kinds[gvk.WasmPlugin] != 1 || kinds[gvk.RequestAuthentication] != 1 {
		t.Fatalf("parsed %v, want one WasmPlugin and one RequestAuthentication", kinds)
	}
}

// TestIstioRefusesABrokenWasmPlugin shows that parse really validates: a sha256 that is not a
// digest is refused, as the webhook would refuse it.
func TestIstioRefusesABrokenWasmPlugin(t *testing.T) {
	wp := strings.Replace(read(t, wasmPluginFile), "  # sha256: <digest>", "  sha256: not-a-digest", 1)
	if _, _, err := crd.ParseInputs(wp); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("err = %v, want the sha256 refused", err)
	}
}

// gateway is what istiod generates for the ingress gateway given cfgs: the HTTP filters of its
// listener for the Gateway fixture's port, and its ECDS configuration by resource name.
type gateway struct {
	filters []*hcm.HttpFilter
	ecds    map[string]*envoycore.TypedExtensionConfig
}

// istiod runs Istio's config generation for an ingress gateway pod (the labels the manifests
// select, in istio-system) on cfgs. WasmPlugins reach the generator through Istio's
// WasmPlugin-to-TrafficExtension translation controller, as in istiod
// (pilot/pkg/bootstrap/configcontroller.go) and Istio's own fake discovery server
// (pilot/test/xds/fake.go).
func istiod(t *testing.T, cfgs []config.Config) gateway {
	t.Helper()
	// istiod would fetch the RequestAuthentication's jwksUri itself (PILOT_JWT_ENABLE_REMOTE_JWKS
	// defaults to istiod fetching): give it an inline key set instead, so that the test makes no
	// call outside the machine. Nothing else of the rule changes.
	for _, c := range cfgs {
		if ra, ok := c.Spec.(*securityv1beta1.RequestAuthentication); ok {
			for _, r := range ra.JwtRules {
				r.Jwks = `{"keys":[]}`
			}
		}
	}
	cg := core.NewConfigGenTest(t, core.TestOptions{
		Configs: cfgs,
		CreateConfigStore: func(c model.ConfigStoreController) model.ConfigStoreController {
			return extensions.NewController(c, nil, nil)
		},
	})
	proxy := cg.SetupProxy(&model.Proxy{
		Type:            model.Router,
		ConfigNamespace: ingressNamespace,
		Labels:          ingressLabels,
		Metadata:        &model.NodeMetadata{Namespace: ingressNamespace, Labels: ingressLabels},
	})
	var gw gateway
	for _, l := range cg.Listeners(proxy) {
		if l.GetAddress().GetSocketAddress().GetPortValue() != 80 {
			continue
		}
		gw.filters = httpFilters(t, l)
	}
	if gw.filters == nil {
		t.Fatal("istiod built no HTTP listener on port 80 for the ingress gateway")
	}
	var names []string
	for _, f := range gw.filters {
		if f.GetConfigDiscovery() != nil {
			names = append(names, f.GetName())
		}
	}
	gw.ecds = map[string]*envoycore.TypedExtensionConfig{}
	for _, ec := range cg.ConfigGen.BuildExtensionConfiguration(proxy, cg.PushContext(), names, nil) {
		gw.ecds[ec.GetName()] = ec
	}
	return gw
}

// httpFilters returns the HTTP filters of the listener's HTTP connection manager.
func httpFilters(t *testing.T, l *listener.Listener) []*hcm.HttpFilter {
	t.Helper()
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			if f.GetName() != wellknown.HTTPConnectionManager {
				continue
			}
			var m hcm.HttpConnectionManager
			if err := f.GetTypedConfig().UnmarshalTo(&m); err != nil {
				t.Fatal(err)
			}
			return m.GetHttpFilters()
		}
	}
	return nil
}

// floodgate returns the position of floodgate's filter in gw's chain (-1 if absent) and its
// wasm configuration as the gateway receives it by ECDS.
func (gw gateway) floodgate(t *testing.T) (int, *wasmv3.PluginConfig) {
	t.Helper()
	i := slices.IndexFunc(gw.filters, func(f *hcm.HttpFilter) bool {
		return strings.HasPrefix(f.GetName(), model.TrafficExtensionResourceNamePrefix+ingressNamespace+".floodgate")
	})
	if i < 0 {
		return -1, nil
	}
	ec := gw.ecds[gw.filters[i].GetName()]
	if ec == nil {
		t.Fatalf("no ECDS configuration for %s", gw.filters[i].GetName())
	}
	var w httpwasm.Wasm
	if err := ec.GetTypedConfig().UnmarshalTo(&w); err != nil {
		t.Fatalf("ECDS %s: %v", ec.GetName(), err)
	}
	return i, w.GetConfig()
}

// configuration returns the plugin configuration of pc: the JSON in its StringValue.
func configuration(t *testing.T, pc *wasmv3.PluginConfig) []byte {
	t.Helper()
	var sv wrapperspb.StringValue
	if err := pc.GetConfiguration().UnmarshalTo(&sv); err != nil {
		t.Fatalf("configuration is not a StringValue: %v", err)
	}
	return []byte(sv.GetValue())
}

// position returns the position of the first filter named name in gw's chain, or -1.
func (gw gateway) position(name string) int {
	return slices.IndexFunc(gw.filters, func(f *hcm.HttpFilter) bool { return f.GetName() == name })
}

func filterNames(fs []*hcm.HttpFilter) []string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.GetName()
	}
	return names
}

// TestFloodgateLandsOnTheGatewayChain runs istiod's translation of the shipped manifests and
// requires floodgate on the ingress gateway's HTTP filter chain in the AUTHZ phase: after
// jwt_authn, before the router, with a configuration the plugin accepts.
func TestFloodgateLandsOnTheGatewayChain(t *testing.T) {
	gw := istiod(t, shipped(t, nil))
	at, pc := gw.floodgate(t)
	if at < 0 {
		t.Fatalf("floodgate is not on the gateway's chain: %v", filterNames(gw.filters))
	}
	jwt, router := gw.position(authnmodel.EnvoyJwtFilterName), gw.position(wellknown.Router)
	if jwt < 0 || !(jwt < at && at < router) {
		t.Fatalf("chain %v: want jwt_authn (%d) < floodgate (%d) < router (%d)", filterNames(gw.filters), jwt, at, router)
	}

	if pc.GetRootId() != "floodgate" {
		t.Errorf("root_id %q, want the pluginName floodgate", pc.GetRootId())
	}
	if id := pc.GetVmConfig().GetVmId(); id != "" {
		t.Errorf("vm_id %q: Istio sets none, floodgate's shared-data prefix relies on it", id)
	}
	if pc.GetFailurePolicy() != wasmv3.FailurePolicy_FAIL_CLOSED {
		t.Errorf("failure_policy %v, want FAIL_CLOSED", pc.GetFailurePolicy())
	}
	if remote := pc.GetVmConfig().GetCode().GetRemote(); !strings.HasPrefix(remote.GetHttpUri().GetUri(), "oci://") {
		t.Errorf("module source %v, want the oci:// url", remote)
	}

	// Istio hands pluginConfig over as compact JSON with sorted keys, in a StringValue.
	js := configuration(t, pc)
	var generic any
	if err := json.Unmarshal(js, &generic); err != nil {
		t.Fatal(err)
	}
	canonical, _ := json.Marshal(generic) // compact, map keys sorted
	if string(canonical) != string(js) {
		t.Errorf("the configuration is not compact JSON with sorted keys:\n%s", js)
	}
	cfg, err := floodgateconfig.Parse(js)
	if err != nil {
		t.Fatalf("the plugin refuses the configuration Istio generates:\n%v", err)
	}
	if len(cfg.Policies) == 0 {
		t.Fatal("no policy")
	}
}

// TestServerModeAttachesNothingOnTheGateway reproduces issue #11's first observation with Istio's
// own code: gateway listeners are CLIENT traffic (pilot/pkg/model/extensions.go,
// workloadModeForListenerClass), so a WasmPlugin with match mode SERVER passes validation,
// selects the gateway, and lands on no chain. CLIENT_AND_SERVER, the default, does land.
func TestServerModeAttachesNothingOnTheGateway(t *testing.T) {
	for _, tc := range []struct {
		mode   string
		landed bool
	}{
		{"SERVER", false},
		{"CLIENT", true},
		{"CLIENT_AND_SERVER", true},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cfgs := shipped(t, func(wp string) string {
				edited := strings.Replace(wp, "  - mode: CLIENT\n", "  - mode: "+tc.mode+"\n", 1)
				if !strings.Contains(edited, "mode: "+tc.mode+"\n") {
					t.Fatal("the WasmPlugin has no `- mode: CLIENT` line to edit")
				}
				return edited
			})
			for _, c := range cfgs {
				if wp, ok := c.Spec.(*extensionsv1alpha1.WasmPlugin); ok && wp.GetMatch()[0].GetMode().String() != tc.mode {
					t.Fatalf("mode %v", wp.GetMatch()[0].GetMode())
				}
			}
			at, _ := istiod(t, cfgs).floodgate(t)
			if (at >= 0) != tc.landed {
				t.Fatalf("mode %s: on the chain = %v, want %v", tc.mode, at >= 0, tc.landed)
			}
		})
	}
}

// TestPerUserPolicyReadsVerifiedClaims checks what the shipped RequestAuthentication makes
// Istio's jwt_authn do (pilot/pkg/security/authn/policy_applier.go): it drops the token
// (forward false), so a jwt_claim key reading the Authorization header would find nothing and
// skip every request; it puts the verified payload in dynamic metadata under
// payload_in_metadata. Every jwt_claim key of the plugin's configuration must read that.
func TestPerUserPolicyReadsVerifiedClaims(t *testing.T) {
	gw := istiod(t, shipped(t, nil))
	jwt := gw.position(authnmodel.EnvoyJwtFilterName)
	if jwt < 0 {
		t.Fatalf("no jwt_authn on the gateway: %v", filterNames(gw.filters))
	}
	var ja jwtauthn.JwtAuthentication
	if err := gw.filters[jwt].GetTypedConfig().UnmarshalTo(&ja); err != nil {
		t.Fatal(err)
	}
	payload := ""
	for name, p := range ja.GetProviders() {
		if p.GetForward() {
			t.Errorf("provider %s forwards the token; the shipped RequestAuthentication should not need it", name)
		}
		if payload != "" && p.GetPayloadInMetadata() != payload {
			t.Fatalf("providers disagree on payload_in_metadata: %q, %q", payload, p.GetPayloadInMetadata())
		}
		payload = p.GetPayloadInMetadata()
	}
	if payload == "" {
		t.Fatal("jwt_authn keeps no payload in metadata")
	}

	at, pc := gw.floodgate(t)
	if at < 0 {
		t.Fatalf("floodgate is not on the gateway's chain: %v", filterNames(gw.filters))
	}
	var doc struct {
		Policies []struct {
			Name string `json:"name"`
			Key  []struct {
				Type     string `json:"type"`
				Metadata string `json:"metadata"`
			} `json:"key"`
		} `json:"policies"`
	}
	if err := json.Unmarshal(configuration(t, pc), &doc); err != nil {
		t.Fatal(err)
	}
	claims := 0
	for _, p := range doc.Policies {
		for _, k := range p.Key {
			if k.Type != string(floodgateconfig.KeyJWTClaim) {
				continue
			}
			claims++
			if k.Metadata != payload {
				t.Errorf("policy %s: jwt_claim reads metadata %q; jwt_authn removed the token and keeps the verified payload under %q",
					p.Name, k.Metadata, payload)
			}
		}
	}
	if claims == 0 {
		t.Fatal("no jwt_claim key: the per-user policy is gone")
	}
}
