package e2e

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/floodgate-proxy/floodgate/e2e/envoyhost"
)

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
