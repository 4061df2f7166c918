// Package deploy holds the manifests users apply as they are; its test decodes each one against
// the real schemas (istio.io/api), refusing unknown fields, and runs the plugin configuration
// through floodgate's own validation.
package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/floodgate-proxy/floodgate/config"
	"google.golang.org/protobuf/encoding/protojson"
	extensionsv1alpha1 "istio.io/api/extensions/v1alpha1"
	securityv1 "istio.io/api/security/v1"
	typev1beta1 "istio.io/api/type/v1beta1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

type object struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   metadata        `json:"metadata"`
	Spec       json.RawMessage `json:"spec"`
}

type metadata struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// decode reads a Kubernetes object strictly (unknown top-level or metadata fields fail).
func decode(t *testing.T, doc []byte) object {
	t.Helper()
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		t.Fatal(err)
	}
	var o object
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return o
}

// wasmPlugin decodes istio/wasmplugin.yaml strictly into its object and its istio.io/api spec.
func wasmPlugin(t *testing.T) (object, *extensionsv1alpha1.WasmPlugin) {
	t.Helper()
	data, err := os.ReadFile("istio/wasmplugin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o := decode(t, data)
	if o.APIVersion != "extensions.istio.io/v1alpha1" || o.Kind != "WasmPlugin" || o.Metadata.Name == "" {
		t.Fatalf("object %s %s %q", o.APIVersion, o.Kind, o.Metadata.Name)
	}
	var spec extensionsv1alpha1.WasmPlugin
	if err := (protojson.UnmarshalOptions{}).Unmarshal(o.Spec, &spec); err != nil {
		t.Fatalf("spec does not match istio.io/api: %v", err)
	}
	return o, &spec
}

func TestIstioWasmPlugin(t *testing.T) {
	_, spec := wasmPlugin(t)
	if !strings.HasPrefix(spec.GetUrl(), "oci://") || spec.GetPluginName() != "floodgate" ||
		spec.GetFailStrategy() != extensionsv1alpha1.FailStrategy_FAIL_CLOSE || spec.GetPhase() != extensionsv1alpha1.PluginPhase_AUTHZ {
		t.Fatalf("spec %v", spec)
	}
	// Istio counts gateway listeners as CLIENT traffic (pilot/pkg/model/extensions.go,
	// workloadModeForListenerClass): a WasmPlugin selecting a gateway with mode SERVER attaches
	// nothing. deploy/istio/istiotest proves it with Istio's own code.
	if spec.GetSelector().GetMatchLabels()["istio"] == "ingressgateway" {
		for _, m := range spec.GetMatch() {
			if mode := m.GetMode(); mode != typev1beta1.WorkloadMode_CLIENT && mode != typev1beta1.WorkloadMode_CLIENT_AND_SERVER {
				t.Errorf("match mode %v on a gateway: Istio attaches the plugin to no listener", mode)
			}
		}
	}
	// Istio hands pluginConfig to the plugin as JSON: it must pass floodgate's validation.
	pc, err := protojson.Marshal(spec.GetPluginConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(pc)
	if err != nil {
		t.Fatalf("pluginConfig is refused by the plugin:\n%v", err)
	}
	if len(cfg.Policies) != 4 || cfg.Policies[0].Key[0].TrustedHops != 1 || cfg.Policies[2].Backend != config.BackendRedis ||
		cfg.Policies[3].Backend != config.BackendHybrid || cfg.Redis.SyncIntervalMs != 100 {
		t.Fatalf("policies %+v", cfg.Policies)
	}
}

func TestIstioWasmPluginRejectsUnknownFields(t *testing.T) {
	data, _ := os.ReadFile("istio/wasmplugin.yaml")
	bad := strings.Replace(string(data), "  imagePullPolicy:", "  imagePulPolicy:", 1)
	js, err := yaml.YAMLToJSON([]byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	var o object
	_ = json.Unmarshal(js, &o)
	var spec extensionsv1alpha1.WasmPlugin
	if err := (protojson.UnmarshalOptions{}).Unmarshal(o.Spec, &spec); err == nil {
		t.Fatal("a misspelt field was accepted")
	}
}

// TestRedisHelperManifests decodes the helper's Secret, Deployment and Service into the
// Kubernetes types (unknown fields refused) and checks that they fit together and with the
// WasmPlugin: the token, the port, the probes and the cluster name.
func TestRedisHelperManifests(t *testing.T) {
	data, err := os.ReadFile("istio/redis-helper.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(data), "\n---\n")
	if len(docs) != 3 {
		t.Fatalf("%d documents, want Secret, Deployment, Service", len(docs))
	}
	var secret corev1.Secret
	var deploy appsv1.Deployment
	var svc corev1.Service
	for i, out := range []any{&secret, &deploy, &svc} {
		if err := yaml.UnmarshalStrict([]byte(docs[i]), out); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
	}
	if secret.Kind != "Secret" || deploy.Kind != "Deployment" || svc.Kind != "Service" {
		t.Fatalf("kinds %s %s %s", secret.Kind, deploy.Kind, svc.Kind)
	}
	c := deploy.Spec.Template.Spec.Containers[0]
	if c.Env[0].ValueFrom.SecretKeyRef.Name != secret.Name || secret.StringData[c.Env[0].ValueFrom.SecretKeyRef.Key] == "" {
		t.Fatal("the token does not come from the Secret")
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.Ports[0].ContainerPort != 8379 {
		t.Fatalf("container %+v", c)
	}
	if deploy.Spec.Selector.MatchLabels["app"] != svc.Spec.Selector["app"] || deploy.Spec.Template.Labels["app"] != svc.Spec.Selector["app"] {
		t.Fatal("the Service does not select the Deployment")
	}
	// The WasmPlugin's redis.cluster is the cluster Istio makes for this Service.
	_, spec := wasmPlugin(t)
	pc, _ := protojson.Marshal(spec.GetPluginConfig())
	cfg, err := config.Parse(pc)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("outbound|%d||%s.%s.svc.cluster.local", svc.Spec.Ports[0].Port, svc.Name, svc.Namespace)
	if cfg.Redis.Cluster != want || cfg.Redis.Token != secret.StringData["token"] {
		t.Fatalf("pluginConfig.redis %+v, want cluster %s and the Secret's token", cfg.Redis, want)
	}
}

// jwtPayloadMetadata is the name under which Istio's jwt_authn keeps a verified payload in
// dynamic metadata (payload_in_metadata; pilot/pkg/xds/filters/filters.go, EnvoyJwtFilterPayload).
// deploy/istio/istiotest reads it from the configuration istiod generates.
const jwtPayloadMetadata = "payload"

// TestIstioRequestAuthentication decodes the RequestAuthentication against istio.io/api and
// checks that it and the WasmPlugin fit: the same gateway, and, since Istio's jwt_authn removes
// the token it verified (forwardOriginalToken false), every jwt_claim key reads the verified
// payload from metadata instead of the Authorization header, which would be gone.
func TestIstioRequestAuthentication(t *testing.T) {
	data, err := os.ReadFile("istio/requestauthentication.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o := decode(t, data)
	if o.APIVersion != "security.istio.io/v1" || o.Kind != "RequestAuthentication" {
		t.Fatalf("object %s %s", o.APIVersion, o.Kind)
	}
	var ra securityv1.RequestAuthentication
	if err := protojson.Unmarshal(o.Spec, &ra); err != nil {
		t.Fatalf("spec does not match istio.io/api: %v", err)
	}
	forwarded := len(ra.GetJwtRules()) > 0
	for _, r := range ra.GetJwtRules() {
		if r.GetIssuer() == "" || (r.GetJwksUri() == "" && r.GetJwks() == "") {
			t.Errorf("rule %v: issuer and key set required", r)
		}
		forwarded = forwarded && r.GetForwardOriginalToken()
	}

	w, spec := wasmPlugin(t)
	if fmt.Sprint(ra.GetSelector().GetMatchLabels()) != fmt.Sprint(spec.GetSelector().GetMatchLabels()) || w.Metadata.Namespace != o.Metadata.Namespace {
		t.Fatalf("RequestAuthentication selects %v in %s, WasmPlugin %v in %s",
			ra.GetSelector().GetMatchLabels(), o.Metadata.Namespace, spec.GetSelector().GetMatchLabels(), w.Metadata.Namespace)
	}
	pc, err := protojson.Marshal(spec.GetPluginConfig())
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Policies []struct {
			Name string
			Key  []struct{ Type, Metadata string }
		}
	}
	if err := json.Unmarshal(pc, &doc); err != nil {
		t.Fatal(err)
	}
	claims := 0
	for _, p := range doc.Policies {
		for _, k := range p.Key {
			if k.Type != string(config.KeyJWTClaim) {
				continue
			}
			claims++
			if !forwarded && k.Metadata != jwtPayloadMetadata {
				t.Errorf("policy %s: jwt_claim with metadata %q; the token is removed before floodgate runs, the verified payload is in metadata %q",
					p.Name, k.Metadata, jwtPayloadMetadata)
			}
		}
	}
	if claims == 0 {
		t.Fatal("no jwt_claim key: the RequestAuthentication serves no policy")
	}
}

// TestFailCloseIsDocumentedAsIstioApplies keeps the manifest's comment and the README in step
// with what Istio does on FAIL_CLOSE when the gateway cannot fetch or verify the module: a
// deny-all RBAC filter, 403 for every request (deploy/istio/istiotest,
// TestFailStrategyAsTheAgentApplies, runs Istio's code for it), not the 503 of a failed VM.
func TestFailCloseIsDocumentedAsIstioApplies(t *testing.T) {
	wp, err := os.ReadFile("istio/wasmplugin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(wp), "\n")
	at := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "  failStrategy:") })
	if at < 0 {
		t.Fatal("no failStrategy")
	}
	comment := ""
	for i := at - 1; i >= 0 && strings.HasPrefix(lines[i], "  #"); i-- {
		comment = lines[i] + "\n" + comment
	}
	if !strings.Contains(comment, "403") || !strings.Contains(comment, "RBAC") {
		t.Errorf("the comment on failStrategy does not say that a module Istio cannot fetch means 403 for every request:\n%s", comment)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(readme), "### Istio\n")
	end := strings.Index(string(readme), "### Other proxy-wasm hosts")
	if start < 0 || end < start {
		t.Fatal("README has no Istio section")
	}
	if section := string(readme[start:end]); !strings.Contains(section, "403") || !strings.Contains(section, "FAIL_CLOSE") {
		t.Error("README's Istio section does not say what FAIL_CLOSE does when the module cannot be fetched (403)")
	}
}
