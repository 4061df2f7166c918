package e2e

import (
	"testing"

	"github.com/floodgate-proxy/floodgate/e2e/envoyhost"
	"github.com/floodgate-proxy/floodgate/internal/bootstrap"
)

// TestBootsFromEnvoyYAML runs the plugin with the filter configuration of the envoy.yaml we ship,
// as `make run` does: the file users give Envoy is the one tested.
func TestBootsFromEnvoyYAML(t *testing.T) {
	b, err := bootstrap.Load("../envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := startHost(t, b.Filter.Configuration, 2, func(c *envoyhost.Config) {
		c.VMID, c.RootID, c.PluginName, c.Clusters = b.Filter.VMID, b.Filter.RootID, b.Filter.Name, b.Clusters
	})
	// per-client: 10 per second and 300 per minute.
	got := hammer(t, h, 2, 30, func(int) string { return "192.0.2.1:5000" })
	if got != 10 {
		t.Fatalf("admitted %d of 30 from one client, want 10", got)
	}
	// /api/items without x-api-key: per-api-key skips it; per-client answers in both styles.
	a := send(t, h, "192.0.2.2:5000")
	if a.header("ratelimit-policy") != `"per-client";q=10;w=1` || a.header("x-ratelimit-limit") != "10" {
		t.Fatalf("headers %v", a.headers)
	}
}
