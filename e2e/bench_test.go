package e2e

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/floodgate-proxy/floodgate/e2e/envoyhost"
)

// BenchmarkRequest measures one request (headers in, response headers out, stream done) through
// one worker VM, for the no-op plugin and for floodgate deciding locally. BENCHMARKS.md reports
// the ratios of one run.
func BenchmarkRequest(b *testing.B) {
	cases := []struct {
		name   string
		noop   bool
		config string
	}{
		{name: "noop", noop: true, config: "{}"},
		{name: "absolute-1-limit", config: configOf(policy("p", `,"key":[{"type":"client_ip"}],"limits":[{"rate":1000000}]`))},
		{name: "absolute-3-limits", config: configOf(policy("p", `,"key":[{"type":"client_ip"}],"limits":[{"rate":1000000},{"requests":"100000000/m"},{"requests":"1000000000/h"}]`))},
		{name: "suppressed-1-limit", config: configOf(policy("p", `,"key":[{"type":"client_ip"}],"limits":[{"rate":1000000}],"strategy":"suppressed","hard_limit_factor":2`))},
		{name: "absolute-rejecting", config: configOf(policy("p", `,"key":[{"type":"constant","value":"all"}],"limits":[{"requests":"1/h"}]`))},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			wasm := pluginWasm
			if c.noop {
				wasm = noopWasm
			}
			h, err := envoyhost.New(context.Background(), envoyhost.Config{Wasm: wasm(b), VMs: 1, PluginConfig: []byte(c.config)})
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close(context.Background())
			sources := make([]string, 1024)
			for i := range sources {
				sources[i] = fmt.Sprintf("10.0.%d.%d:1234", i/256, i%256)
			}
			headers := [][2]string{{":method", "GET"}, {":path", "/api/items"}, {":authority", "api.example.com"}, {"x-api-key", "k"}}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sendHeaders(b, h, sources[i%len(sources)], headers)
			}
			b.StopTimer()
			b.ReportMetric(float64(h.MemoryBytes(0))/1024, "KiB-wasm-memory")
			if f := h.Failures(); len(f) > 0 {
				b.Fatal(f)
			}
		})
	}
}

// BenchmarkRedisDecision measures one request decided in Redis through the helper (one EVALSHA
// per decision), one worker VM, sequential requests: ns/op is the added latency per decision.
func BenchmarkRedisDecision(b *testing.B) {
	addr, _ := helperFor(b)
	h, err := envoyhost.New(context.Background(), envoyhost.Config{Wasm: pluginWasm(b), VMs: 1,
		PluginConfig: []byte(redisConfig("")), Clusters: map[string]string{"floodgate-redis-helper": addr}})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(context.Background())
	headers := [][2]string{{":method", "GET"}, {":path", "/"}, {":authority", "x"}}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		sendHeaders(b, h, fmt.Sprintf("10.1.%d.%d:1", (i/256)%256, i%256), headers)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(len(h.HTTPCalls()))/float64(b.N), "calls/decision")
}
