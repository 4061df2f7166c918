// Package deploy holds the manifests users apply as they are; its test decodes each one against
// the real schemas (istio.io/api), refusing unknown fields, and runs the plugin configuration
// through floodgate's own validation.
package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/config"
	"github.com/floodgate-proxy/floodgate/internal/redishelper"
	"github.com/floodgate-proxy/floodgate/internal/redistest"
	"github.com/floodgate-proxy/floodgate/redislimit"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/encoding/protojson"
	extensionsv1alpha1 "istio.io/api/extensions/v1alpha1"
	securityv1 "istio.io/api/security/v1"
	typev1beta1 "istio.io/api/type/v1beta1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
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

// docs splits a manifest file into its YAML documents.
func docs(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(data), "\n---\n")
}

// strict decodes docs into outs, in order, refusing unknown fields.
func strict(t *testing.T, docs []string, outs ...any) {
	t.Helper()
	if len(docs) != len(outs) {
		t.Fatalf("%d documents, want %d", len(docs), len(outs))
	}
	for i, out := range outs {
		if err := yaml.UnmarshalStrict([]byte(docs[i]), out); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
	}
}

// shippedPluginConfig is the WasmPlugin's spec and its pluginConfig as the plugin parses it.
func shippedPluginConfig(t *testing.T) (*extensionsv1alpha1.WasmPlugin, *config.Config) {
	t.Helper()
	_, spec := wasmPlugin(t)
	pc, _ := protojson.Marshal(spec.GetPluginConfig())
	cfg, err := config.Parse(pc)
	if err != nil {
		t.Fatal(err)
	}
	return spec, cfg
}

// TestRedisHelperManifests decodes the helper's Deployment, Service and NetworkPolicy into the
// Kubernetes types (unknown fields refused) and checks that they fit together and with the
// WasmPlugin: secrets from the Secret's files, the port, the probes, the cluster name, the key
// prefix, and a NetworkPolicy that lets only the gateway in.
func TestRedisHelperManifests(t *testing.T) {
	var deploy appsv1.Deployment
	var svc corev1.Service
	var np networkingv1.NetworkPolicy
	strict(t, docs(t, "istio/redis-helper.yaml"), &deploy, &svc, &np)
	if deploy.Kind != "Deployment" || svc.Kind != "Service" || np.Kind != "NetworkPolicy" {
		t.Fatalf("kinds %s %s %s", deploy.Kind, svc.Kind, np.Kind)
	}
	pod := deploy.Spec.Template.Spec
	c := pod.Containers[0]
	if len(pod.Volumes) != 1 || pod.Volumes[0].Secret == nil || pod.Volumes[0].Secret.SecretName != "floodgate-redis-helper" ||
		len(c.VolumeMounts) != 1 || !c.VolumeMounts[0].ReadOnly {
		t.Fatalf("the secrets are not the mounted Secret: %+v %+v", pod.Volumes, c.VolumeMounts)
	}
	dir := c.VolumeMounts[0].MountPath
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"-token-file=" + dir + "/token", "-redis-password-file=" + dir + "/redis-password", "-redis-user=floodgate"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %s lack %s", args, want)
		}
	}
	if len(c.Env) != 0 {
		t.Errorf("env %+v: the secrets come from files", c.Env)
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.Ports[0].ContainerPort != 8379 {
		t.Fatalf("container %+v", c)
	}
	if deploy.Spec.Selector.MatchLabels["app"] != svc.Spec.Selector["app"] || deploy.Spec.Template.Labels["app"] != svc.Spec.Selector["app"] {
		t.Fatal("the Service does not select the Deployment")
	}
	spec, cfg := shippedPluginConfig(t)
	// The WasmPlugin's redis.cluster is the cluster Istio makes for this Service.
	want := fmt.Sprintf("outbound|%d||%s.%s.svc.cluster.local", svc.Spec.Ports[0].Port, svc.Name, svc.Namespace)
	if cfg.Redis.Cluster != want {
		t.Fatalf("pluginConfig.redis %+v, want cluster %s", cfg.Redis, want)
	}
	if !strings.Contains(args, "-key-prefixes="+cfg.SharedData.Prefix) {
		t.Errorf("args %s: the helper must allow the plugin's prefix %s", args, cfg.SharedData.Prefix)
	}
	// Only the WasmPlugin's gateway pods reach the helper, on its port.
	if fmt.Sprint(np.Spec.PodSelector.MatchLabels) != fmt.Sprint(deploy.Spec.Template.Labels) || len(np.Spec.Ingress) != 1 ||
		len(np.Spec.Ingress[0].From) != 1 || fmt.Sprint(np.Spec.Ingress[0].From[0].PodSelector.MatchLabels) != fmt.Sprint(spec.GetSelector().GetMatchLabels()) ||
		np.Spec.Ingress[0].From[0].NamespaceSelector != nil || np.Spec.Ingress[0].Ports[0].Port.IntValue() != 8379 {
		t.Fatalf("network policy %+v", np.Spec)
	}
}

// TestHelperTokenReachesThePluginThroughTheEnvironment: the WasmPlugin names the token's variable
// (redis.token_env), passes it from the proxy's environment (vmConfig.env, valueFrom HOST), and
// the gateway patch fills that variable from the helper's Secret.
func TestHelperTokenReachesThePluginThroughTheEnvironment(t *testing.T) {
	spec, cfg := shippedPluginConfig(t)
	if cfg.Redis.Token != "" || cfg.Redis.TokenEnv == "" {
		t.Fatalf("pluginConfig.redis %+v: the token must come from the environment", cfg.Redis)
	}
	env := spec.GetVmConfig().GetEnv()
	if len(env) != 1 || env[0].GetName() != cfg.Redis.TokenEnv || env[0].GetValueFrom() != extensionsv1alpha1.EnvValueSource_HOST || env[0].GetValue() != "" {
		t.Fatalf("vmConfig.env %v, want %s from the host", env, cfg.Redis.TokenEnv)
	}
	var patch appsv1.Deployment
	strict(t, docs(t, "istio/gateway-token-patch.yaml"), &patch)
	c := patch.Spec.Template.Spec.Containers
	if len(c) != 1 || c[0].Name != "istio-proxy" || len(c[0].Env) != 1 || c[0].Env[0].Name != cfg.Redis.TokenEnv ||
		c[0].Env[0].ValueFrom == nil || c[0].Env[0].ValueFrom.SecretKeyRef == nil ||
		c[0].Env[0].ValueFrom.SecretKeyRef.Name != "floodgate-redis-helper" || c[0].Env[0].ValueFrom.SecretKeyRef.Key != "token" {
		t.Fatalf("gateway patch %+v", c)
	}
}

// TestNoManifestCarriesASecret: no Secret object, no token, no placeholder in deploy/: secrets
// are created by the documented commands (issue #12: the shipped manifests carried change-me).
func TestNoManifestCarriesASecret(t *testing.T) {
	files, err := filepath.Glob("istio/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatal(files, err)
	}
	for _, f := range files {
		for i, d := range docs(t, f) {
			var o struct {
				Kind string
				Data map[string]any
			}
			if err := yaml.Unmarshal([]byte(d), &o); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			if o.Kind == "Secret" {
				t.Errorf("%s document %d is a Secret: create it with the documented command", f, i)
			}
			for _, line := range strings.Split(d, "\n") {
				if l := strings.TrimSpace(line); strings.HasPrefix(l, "token:") || strings.Contains(strings.ToLower(l), "change-me") {
					t.Errorf("%s: %q", f, l)
				}
			}
		}
	}
}

// TestRedisManifests: the shipped Redis has a memory bound and an eviction policy fit for a rate
// limiter, the busy-script threshold, its ACL file from a Secret, room above maxmemory in its
// container, the Service the helper dials, and a NetworkPolicy that lets only the helper in.
func TestRedisManifests(t *testing.T) {
	var cm corev1.ConfigMap
	var deploy appsv1.Deployment
	var svc corev1.Service
	var np networkingv1.NetworkPolicy
	strict(t, docs(t, "istio/redis.yaml"), &cm, &deploy, &svc, &np)
	conf := redisConf(t, cm.Data["redis.conf"])
	for k, want := range map[string]string{"maxmemory-policy": "allkeys-lfu", "busy-reply-threshold": "100", "save": `""`, "appendonly": "no",
		"aclfile": "/etc/redis/users/users.acl"} {
		if conf[k] != want {
			t.Errorf("redis.conf %s %q, want %q", k, conf[k], want)
		}
	}
	maxmemory := resource.MustParse(strings.TrimSuffix(conf["maxmemory"], "mb") + "Mi")
	limit := deploy.Spec.Template.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]
	if maxmemory.Value() < 64<<20 || limit.Value() < maxmemory.Value()*3/2 {
		t.Errorf("maxmemory %s under a container limit of %s: keep half as much again for Redis's own use", conf["maxmemory"], limit.String())
	}
	var helper appsv1.Deployment
	var helperSvc corev1.Service
	var helperNP networkingv1.NetworkPolicy
	strict(t, docs(t, "istio/redis-helper.yaml"), &helper, &helperSvc, &helperNP)
	addr := fmt.Sprintf("-redis=%s.%s.svc.cluster.local:%d", svc.Name, svc.Namespace, svc.Spec.Ports[0].Port)
	if !slices.Contains(helper.Spec.Template.Spec.Containers[0].Args, addr) {
		t.Errorf("the helper does not dial this Redis (%s)", addr)
	}
	if fmt.Sprint(np.Spec.PodSelector.MatchLabels) != fmt.Sprint(deploy.Spec.Template.Labels) || len(np.Spec.Ingress) != 1 ||
		fmt.Sprint(np.Spec.Ingress[0].From[0].PodSelector.MatchLabels) != fmt.Sprint(helper.Spec.Template.Labels) ||
		np.Spec.Ingress[0].Ports[0].Port.IntValue() != 6379 {
		t.Fatalf("network policy %+v", np.Spec)
	}
	pod := deploy.Spec.Template.Spec
	if pod.Volumes[1].Secret == nil || pod.Volumes[1].Secret.SecretName != "floodgate-redis-users" ||
		pod.Containers[0].VolumeMounts[1].MountPath+"/users.acl" != conf["aclfile"] {
		t.Fatalf("the ACL file is not the Secret's: %+v", pod.Volumes)
	}
}

// redisConf reads "directive value" lines.
func redisConf(t *testing.T, conf string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(conf, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			k, v, _ := strings.Cut(line, " ")
			out[k] = v
		}
	}
	if len(out) == 0 {
		t.Fatal("empty redis.conf")
	}
	return out
}

// TestShippedRedisRuns starts a real redis-server on the shipped redis.conf (its own port and a
// temporary ACL file in the documented form), then checks that the configuration is in force,
// that the floodgate user runs floodgate's script and nothing else, and that the default user is
// off. README and redis.yaml give the same ACL line.
func TestShippedRedisRuns(t *testing.T) {
	var cm corev1.ConfigMap
	var deploy appsv1.Deployment
	var svc corev1.Service
	var np networkingv1.NetworkPolicy
	strict(t, docs(t, "istio/redis.yaml"), &cm, &deploy, &svc, &np)
	dir := t.TempDir()
	const password = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	userLine := "user floodgate " + strings.Join(redishelper.ACLRules("$REDIS_PASSWORD", "floodgate"), " ")
	for _, f := range []string{"istio/redis.yaml", "../README.md"} {
		if b, _ := os.ReadFile(f); !strings.Contains(string(b), userLine) {
			t.Errorf("%s does not give the ACL line %q", f, userLine)
		}
	}
	acl := "user default off\n" + strings.ReplaceAll(userLine, "$REDIS_PASSWORD", password) + "\n" +
		"user admin on >admin-of-the-test ~* &* +@all\n" // the test's own administrator
	conf := strings.ReplaceAll(cm.Data["redis.conf"], "/etc/redis/users/users.acl", filepath.Join(dir, "users.acl"))
	if err := os.WriteFile(filepath.Join(dir, "users.acl"), []byte(acl), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "redis.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := redistest.StartWith(filepath.Join(dir, "redis.conf"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "admin", Password: "admin-of-the-test", Protocol: 2})
	defer admin.Close()
	got, err := admin.ConfigGet(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"maxmemory": "201326592", "maxmemory-policy": "allkeys-lfu", "busy-reply-threshold": "100"} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
	if err := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 2}).Ping(ctx).Err(); err == nil {
		t.Error("the default user answers")
	}
	fg := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "floodgate", Password: password, Protocol: 2})
	defer fg.Close()
	l, _ := algorithm.NewLimit(10, 1, 0)
	p, _ := algorithm.NewPolicy(algorithm.Absolute, 1, l)
	var args []any
	for _, a := range redislimit.Args(p, redislimit.Call{Cost: 1, Draw: 0.5, NowMs: -1}) {
		args = append(args, a)
	}
	if _, err := fg.Eval(ctx, redislimit.ScriptFor(p).Source, []string{"{floodgate:p:1}"}, args...).Int64Slice(); err != nil {
		t.Fatalf("floodgate's script: %v", err)
	}
	if err := fg.Do(ctx, "EVAL", "return redis.call('FLUSHALL')", "0").Err(); err == nil {
		t.Fatal("the floodgate user flushed the database")
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
