package e2e

import (
	"cmp"
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
		hybrid bool
		keys   int // distinct client IPs, 1024 unless set
		config string
	}{
		{name: "noop", noop: true, config: "{}"},
		{name: "absolute-1-limit", config: configOf(policy("p", `,"key":[{"type":"client_ip"}],"limits":[{"rate":1000000}]`))},
		{name: "absolute-3-limits", config: configOf(policy("p", `,"key":[{"type":"client_ip"}],"limits":[{"rate":1000000},{"requests":"100000000/m"},{"requests":"1000000000/h"}]`))},
		{name: "suppressed-1-limit", config: configOf(policy("p", `,"key":[{"type":"client_ip"}],"limits":[{"rate":1000000}],"strategy":"suppressed","hard_limit_factor":2`))},
		// Hybrid: 32 keys, each hot enough to keep a reservation even while the warm-up decides
		// in Redis (this loop is closed: with 1024 keys at Redis speed, every key would see less
		// than one request per sync interval, stay cold and be decided in Redis throughout).
		{name: "absolute-1-limit-32-keys", keys: 32, config: configOf(policy("p", `,"key":[{"type":"client_ip"}],"limits":[{"rate":1000000}]`))},
		{name: "hybrid-1-limit-32-keys", hybrid: true, keys: 32, config: hybridConfig(`[{"rate":1000000}]`, "")},
		{name: "absolute-rejecting", config: configOf(policy("p", `,"key":[{"type":"constant","value":"all"}],"limits":[{"requests":"1/h"}]`))},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			wasm := pluginWasm
			if c.noop {
				wasm = noopWasm
			}
			cfg := envoyhost.Config{Wasm: wasm(b), VMs: 1, PluginConfig: []byte(c.config)}
			if c.hybrid {
				addr, _ := helperFor(b)
				cfg.Clusters = map[string]string{"floodgate-redis-helper": addr}
			}
			h, err := envoyhost.New(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close(context.Background())
			sources := make([]string, cmp.Or(c.keys, 1024))
			for i := range sources {
				sources[i] = fmt.Sprintf("10.0.%d.%d:1234", i/256, i%256)
			}
			headers := [][2]string{{":method", "GET"}, {":path", "/api/items"}, {":authority", "api.example.com"}, {"x-api-key", "k"}}
			if c.hybrid {
				// Every key's first requests are decided in Redis until a lease reserves for it.
				for range 100 {
					for _, src := range sources {
						sendHeaders(b, h, src, headers)
					}
				}
			}
			calls := len(h.HTTPCalls())
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sendHeaders(b, h, sources[i%len(sources)], headers)
			}
			b.StopTimer()
			b.ReportMetric(float64(h.MemoryBytes(0))/1024, "KiB-wasm-memory")
			if c.hybrid {
				b.ReportMetric(float64(len(h.HTTPCalls())-calls)/float64(b.N), "calls/request")
			}
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

// BenchmarkHybridRedisCalls paces requests for one key of a hybrid policy at several rates, for
// 2 s each (one iteration), through one gateway of two workers, and reports the calls the
// gateway makes to the Redis helper per second: they are set by the sync tick, not by the rate.
func BenchmarkHybridRedisCalls(b *testing.B) {
	for _, rate := range []int{100, 1000, 4000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			addr, _ := helperFor(b)
			h, err := envoyhost.New(context.Background(), envoyhost.Config{Wasm: pluginWasm(b), VMs: 2,
				PluginConfig: []byte(hybridConfig(`[{"rate":1000000}]`, "")), Clusters: map[string]string{"floodgate-redis-helper": addr}})
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close(context.Background())
			headers := [][2]string{{":method", "GET"}, {":path", "/"}, {":authority", "x"}}
			for i := 0; i < b.N; i++ {
				start, sent := time.Now(), 0
				calls := len(h.HTTPCalls())
				for time.Since(start) < 2*time.Second {
					if due := start.Add(time.Duration(sent) * time.Second / time.Duration(rate)); time.Until(due) > 0 {
						time.Sleep(time.Until(due))
					}
					sendHeaders(b, h, "192.0.2.1:1", headers)
					sent++
				}
				secs := time.Since(start).Seconds()
				b.ReportMetric(float64(sent)/secs, "requests/s")
				b.ReportMetric(float64(len(h.HTTPCalls())-calls)/secs, "calls/s")
			}
		})
	}
}
