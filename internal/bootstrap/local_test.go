package bootstrap

import (
	"testing"

	"github.com/floodgate-proxy/floodgate/config"
)

// TestShippedLocalBootstraps holds deploy/local's bootstraps (make run-redis, make run-hybrid) to
// what envoy.yaml is held to, and to what their stack relies on: the helper cluster their redis
// section names, and the token reaching the VM from the proxy's environment only.
func TestShippedLocalBootstraps(t *testing.T) {
	tests := []struct {
		file    string
		backend config.BackendKind
	}{
		{"../../deploy/local/envoy-redis.yaml", config.BackendRedis},
		{"../../deploy/local/envoy-hybrid.yaml", config.BackendHybrid},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Setenv("FLOODGATE_HELPER_TOKEN", "from-the-environment")
			b, err := Load(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if b.Listener != "127.0.0.1:10000" || b.Route != "upstream" || b.Clusters["upstream"] != "127.0.0.1:8080" ||
				b.Raw.GetAdmin().GetAddress().GetSocketAddress().GetPortValue() != 9901 {
				t.Fatalf("bootstrap %+v", b)
			}
			f := b.Filter
			if f.RootID != "floodgate" || f.Code != "plugin.wasm" || f.FailOpen || f.Env["FLOODGATE_HELPER_TOKEN"] != "from-the-environment" {
				t.Fatalf("wasm filter %+v", f)
			}
			cfg, err := config.Parse([]byte(f.Configuration))
			if err != nil {
				t.Fatalf("the shipped plugin configuration is invalid:\n%v", err)
			}
			if cfg.Redis.Token != "" || cfg.Redis.TokenEnv != "FLOODGATE_HELPER_TOKEN" || b.Clusters[cfg.Redis.Cluster] != "127.0.0.1:8379" {
				t.Fatalf("redis section %+v, clusters %v", cfg.Redis, b.Clusters)
			}
			if len(cfg.Policies) != 1 || cfg.Policies[0].Backend != tc.backend || cfg.Policies[0].FailureMode != config.FailLocal {
				t.Fatalf("policies %+v", cfg.Policies)
			}
		})
	}
}
