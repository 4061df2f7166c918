// Package deploy holds the manifests users apply as they are; its test decodes each one against
// the real schemas (istio.io/api), refusing unknown fields, and runs the plugin configuration
// through floodgate's own validation.
package deploy

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/floodgate-proxy/floodgate/config"
	"google.golang.org/protobuf/encoding/protojson"
	extensionsv1alpha1 "istio.io/api/extensions/v1alpha1"
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

func TestIstioWasmPlugin(t *testing.T) {
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
	if !strings.HasPrefix(spec.GetUrl(), "oci://") || spec.GetPluginName() != "floodgate" ||
		spec.GetFailStrategy() != extensionsv1alpha1.FailStrategy_FAIL_CLOSE || spec.GetPhase() != extensionsv1alpha1.PluginPhase_AUTHZ {
		t.Fatalf("spec %v", &spec)
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
	if len(cfg.Policies) != 2 || cfg.Policies[0].Key[0].TrustedHops != 1 {
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
