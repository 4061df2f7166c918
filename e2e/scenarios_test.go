package e2e

import (
	"testing"
	"time"

	"github.com/floodgate-proxy/floodgate/e2e/envoyhost"
	"github.com/floodgate-proxy/floodgate/internal/scenarios"
)

// wasmGateway is plugin.wasm in the wazero host.
type wasmGateway struct{ h *envoyhost.Host }

func (g wasmGateway) Send(t testing.TB, source string, headers [][2]string, upstream int) (int, [][2]string, string) {
	t.Helper()
	a := sendUpstream(t, g.h, source, headers, upstream)
	return a.status, a.headers, a.body
}

func (g wasmGateway) Metric(t testing.TB, name string) int64 { return metric(t, g.h, name) }

// TestScenariosWasm runs the same behaviour tests as the plugin package's native run.
func TestScenariosWasm(t *testing.T) {
	scenarios.Run(t, func(t *testing.T, config string) scenarios.Gateway {
		// The clock stands still: Retry-After and reset times do not depend on how long the
		// steps take (a second elapsed under load answered 59 for 60).
		clock := envoyhost.NewClock(time.Now())
		return wasmGateway{h: startHost(t, config, 2, func(c *envoyhost.Config) { c.Clock = clock })}
	})
}
