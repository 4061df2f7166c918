package e2e

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/floodgate-proxy/floodgate/e2e/envoyhost"
	"github.com/floodgate-proxy/floodgate/internal/bootstrap"
)

// TestHelperTokenOnlyInTheHostEnvironment: plugin.wasm authenticates to the helper with a token
// that exists only in the gateway process's environment. envoy.yaml's
// vm_config.environment_variables.host_env_keys carry it into the VM's WASI environment (read by
// internal/bootstrap the way Envoy's WasmConfig does), and the configuration only names it
// (redis.token_env). Fail closed, so a refused token would show as 503.
func TestHelperTokenOnlyInTheHostEnvironment(t *testing.T) {
	addr, _ := helperFor(t)
	config := `{"redis":{"cluster":"floodgate-redis-helper","token_env":"FLOODGATE_HELPER_TOKEN","timeout_ms":1000},
		"policies":[{"name":"p","key":[{"type":"client_ip"}],"limits":[{"requests":"5/m"}],"backend":"redis","failure_mode":"closed"}]}`
	start := func(t *testing.T) (*envoyhost.Host, error) {
		t.Helper()
		b, err := bootstrap.Load("../envoy.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return envoyhost.New(context.Background(), envoyhost.Config{Wasm: pluginWasm(t), VMs: 2, VMID: b.Filter.VMID, RootID: b.Filter.RootID,
			PluginConfig: []byte(config), Env: b.Filter.Env, Clusters: map[string]string{"floodgate-redis-helper": addr}})
	}
	t.Run("the helper's token", func(t *testing.T) {
		t.Setenv("FLOODGATE_HELPER_TOKEN", helperToken)
		h, err := start(t)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close(context.Background())
		for i, want := range []int{200, 200, 200, 200, 200, 429, 429} {
			if a := send(t, h, "198.51.100.20:1"); a.status != want {
				t.Fatalf("request %d: %d, want %d", i, a.status, want)
			}
		}
		if strings.Contains(config, helperToken) {
			t.Fatal("the token is in the plugin configuration")
		}
	})
	t.Run("a wrong token", func(t *testing.T) {
		t.Setenv("FLOODGATE_HELPER_TOKEN", "0123456789abcdef0123456789abcdef")
		h, err := start(t)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close(context.Background())
		if a := send(t, h, "198.51.100.21:1"); a.status != 503 {
			t.Fatalf("%d, want 503: the helper refuses the token and the policy fails closed", a.status)
		}
	})
	t.Run("unset", func(t *testing.T) {
		t.Setenv("FLOODGATE_HELPER_TOKEN", "")
		os.Unsetenv("FLOODGATE_HELPER_TOKEN")
		_, err := start(t)
		if !errors.Is(err, envoyhost.ErrConfigRejected) || !strings.Contains(err.Error(), "FLOODGATE_HELPER_TOKEN is unset or empty") {
			t.Fatalf("err = %v, want the configuration refused for the missing variable", err)
		}
	})
}
