package plugin

import (
	"strings"
	"testing"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// TestHelperTokenFromTheVMEnvironment: with redis.token_env the token is the variable's value,
// read at load; unset or empty, the configuration is refused with a clear line. (Natively the
// VM's environment is the process's; tests of plugin.wasm give it through WASI, as Envoy does.)
func TestHelperTokenFromTheVMEnvironment(t *testing.T) {
	config := []byte(`{"redis":{"cluster":"helper","token_env":"FLOODGATE_TEST_HELPER_TOKEN"},
		"policies":[{"name":"p","key":[{"type":"client_ip"}],"limits":[{"rate":1}],"backend":"redis"}]}`)
	for _, tc := range []struct {
		name, value string
		loads       bool
	}{
		{"set", "from-the-environment", true}, {"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("FLOODGATE_TEST_HELPER_TOKEN", tc.value)
			host, reset := proxytest.NewHostEmulator(proxytest.NewEmulatorOption().WithVMContext(NewVM(Options{})).WithPluginConfiguration(config))
			defer reset()
			if got := host.StartPlugin() == types.OnPluginStartStatusOK; got != tc.loads {
				t.Fatalf("loaded %v, want %v: %v", got, tc.loads, host.GetCriticalLogs())
			}
			if !tc.loads {
				if logs := strings.Join(host.GetCriticalLogs(), "\n"); !strings.Contains(logs, "FLOODGATE_TEST_HELPER_TOKEN is unset or empty in the VM's environment") {
					t.Fatalf("critical logs: %s", logs)
				}
				return
			}
			if err := host.SetProperty([]string{"source", "address"}, []byte("192.0.2.1:1")); err != nil {
				t.Fatal(err)
			}
			id := host.InitializeHttpContext()
			host.CallOnRequestHeaders(id, [][2]string{{":path", "/"}, {":method", "GET"}, {":authority", "x"}}, true)
			calls := host.GetCalloutAttributesFromContext(id)
			if len(calls) != 1 || !hasHeader(calls[0].Headers, "authorization", "Bearer from-the-environment") {
				t.Fatalf("callouts %+v", calls)
			}
		})
	}
}

func hasHeader(headers [][2]string, name, value string) bool {
	for _, h := range headers {
		if h[0] == name && h[1] == value {
			return true
		}
	}
	return false
}
