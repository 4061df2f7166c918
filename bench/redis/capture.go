package main

import (
	"fmt"
	"io"
	"log"
	"os"

	"github.com/floodgate-proxy/floodgate/config"
	"github.com/floodgate-proxy/floodgate/plugin"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// helperCall is one request the plugin sends to the Redis helper: its Envoy headers (":method",
// ":path", ":authority" and the rest) and its body.
type helperCall struct {
	Headers [][2]string
	Body    []byte
}

// pluginConfig is the configuration of one floodgate policy of the benchmark in redis mode:
// keyed by client IP, strategy and limits as given (JSON fragments), the helper reached as the
// cluster "redis-helper" with token.
func pluginConfig(policy, strategy, limits, token string) string {
	return fmt.Sprintf(`{"redis":{"cluster":"redis-helper","token":%q},"policies":[{"name":%q,"backend":"redis",`+
		`"key":[{"type":"client_ip"}],"strategy":%q,"limits":[%s]}]}`, token, policy, strategy, limits)
}

// compile parses a plugin configuration as the plugin does and returns its one policy.
func compile(cfgJSON string) (*config.Policy, error) {
	cfg, err := config.Parse([]byte(cfgJSON))
	if err != nil {
		return nil, fmt.Errorf("configuration %s: %w", cfgJSON, err)
	}
	return cfg.Policies[0], nil
}

// capture runs the real plugin natively (under the proxy-wasm SDK's proxytest host) with
// cfgJSON and records the helper call it makes for a request from each of ips: the exact
// headers and body the plugin would hand to Envoy. No call is answered.
func capture(cfgJSON string, ips []string) ([]helperCall, error) {
	log.SetOutput(io.Discard) // proxytest logs every call
	defer log.SetOutput(os.Stderr)
	host, reset := proxytest.NewHostEmulator(proxytest.NewEmulatorOption().
		WithVMContext(plugin.NewVM(plugin.Options{})).WithPluginConfiguration([]byte(cfgJSON)))
	defer reset()
	if host.StartVM() != types.OnVMStartStatusOK {
		return nil, fmt.Errorf("capture: the VM did not start")
	}
	if host.StartPlugin() != types.OnPluginStartStatusOK {
		return nil, fmt.Errorf("capture: configuration refused: %v", host.GetCriticalLogs())
	}
	calls := make([]helperCall, 0, len(ips))
	for _, ip := range ips {
		if err := host.SetProperty([]string{"source", "address"}, []byte(ip+":40000")); err != nil {
			return nil, fmt.Errorf("capture: %w", err)
		}
		id := host.InitializeHttpContext()
		if host.CallOnRequestHeaders(id, [][2]string{{":method", "GET"}, {":path", "/"}, {":authority", "api.example.com"}}, true) != types.ActionPause {
			return nil, fmt.Errorf("capture: the plugin did not pause the request for its decision")
		}
		out := host.GetCalloutAttributesFromContext(id)
		if len(out) != 1 {
			return nil, fmt.Errorf("capture: %d helper calls for one request, want 1", len(out))
		}
		calls = append(calls, helperCall{Headers: out[0].Headers, Body: out[0].Body})
		host.CompleteHttpContext(id)
	}
	return calls, nil
}
