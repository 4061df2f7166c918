package redishelper

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/redislimit"
	"github.com/redis/go-redis/v9"
)

// BenchmarkScriptCost measures, in Redis itself (INFO commandstats, so neither the network nor
// the helper counts), what one call of floodgate's scripts costs, and the memory of one key
// (MEMORY USAGE: value, key name, TTL and Redis's own overhead):
//   - B/key-1: a key after one request (what a flood of one-shot keys leaves),
//   - B/key-full: every bucket of every limit live (the most one key takes),
//   - redis-µs/call: a decision on a full key, each call moving to the next bucket,
//   - redis-µs/expiry: the call after half the window passed at once (half the buckets expire).
//
// The clock is pinned (tests may; the helper refuses it), so filling 1000 buckets takes 1000
// calls, not the window. README's Operations section quotes the figures.
//
//	go test -run '^$' -bench ScriptCost ./internal/redishelper/
func BenchmarkScriptCost(b *testing.B) {
	ctx := context.Background()
	lim := func(rate float64, windowS, group int64) algorithm.Limit {
		l, err := algorithm.NewLimit(rate, windowS, group)
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	many := func(n int, windowS int64) []algorithm.Limit {
		var ls []algorithm.Limit
		for i := range n {
			ls = append(ls, lim(float64(1000+i), windowS, 0))
		}
		return ls
	}
	bucket, _ := algorithm.NewTokenBucket(1000, 2000)
	for _, tc := range []struct {
		name   string
		s      algorithm.Strategy
		h      float64
		limits []algorithm.Limit
	}{
		{"absolute/1s", algorithm.Absolute, 1, []algorithm.Limit{lim(1000, 1, 0)}},
		{"absolute/60s", algorithm.Absolute, 1, []algorithm.Limit{lim(1000, 60, 0)}},
		{"absolute/1h", algorithm.Absolute, 1, []algorithm.Limit{lim(1000, 3600, 0)}},
		{"absolute/1s+1h", algorithm.Absolute, 1, []algorithm.Limit{lim(1000, 1, 0), lim(1000, 3600, 0)}},
		{"suppressed/1s", algorithm.Suppressed, 2, []algorithm.Limit{lim(1000, 1, 0)}},
		{"suppressed/60s", algorithm.Suppressed, 2, []algorithm.Limit{lim(1000, 60, 0)}},
		{"suppressed/8x1000", algorithm.Suppressed, 2, many(8, 100)},
		{"suppressed/16x1000", algorithm.Suppressed, 2, many(algorithm.MaxLimits, 100)},
		{"gcra/1s", algorithm.GCRA, 1, []algorithm.Limit{lim(1000, 1, 0)}},
		{"token_bucket", algorithm.TokenBucket, 1, []algorithm.Limit{bucket}},
	} {
		p, err := algorithm.NewPolicy(tc.s, tc.h, tc.limits...)
		if err != nil {
			b.Fatal(err)
		}
		script := redislimit.ScriptFor(p)
		if err := redisAdmin.ScriptLoad(ctx, script.Source).Err(); err != nil {
			b.Fatal(err)
		}
		key := fmt.Sprintf("{floodgate:per-client:%032x}", len(tc.name)) // the plugin's key form
		now := int64(1_700_000_000_000)
		call := func() {
			// Each call is admitted into a new bucket: the quotas exceed the buckets.
			args := redislimit.Args(p, redislimit.Call{Cost: 1, Draw: 0.5, NowMs: now})
			iargs := make([]any, len(args))
			for i, a := range args {
				iargs[i] = a
			}
			if err := redisAdmin.EvalSha(ctx, script.SHA, []string{key}, iargs...).Err(); err != nil {
				b.Fatal(err)
			}
		}
		var group, window int64 = 1, 1000
		for _, l := range p.Limits() {
			group, window = max(group, l.GroupMs), max(window, l.WindowMs)
		}
		b.Run(tc.name, func(b *testing.B) {
			redisAdmin.Del(ctx, key)
			call()
			one := redisAdmin.MemoryUsage(ctx, key, 0).Val()
			for range window / group { // fill every bucket of the longest limit
				now += group
				call()
			}
			full := redisAdmin.MemoryUsage(ctx, key, 0).Val()
			calls0, us0 := scriptStats(b)
			b.ResetTimer()
			for range b.N {
				now += group
				call()
			}
			b.StopTimer()
			calls1, us1 := scriptStats(b)
			now += window / 2
			call()
			calls2, us2 := scriptStats(b)
			b.ReportMetric(float64(one), "B/key-1")
			b.ReportMetric(float64(full), "B/key-full")
			b.ReportMetric(float64(us1-us0)/float64(calls1-calls0), "redis-µs/call")
			b.ReportMetric(float64(us2-us1)/float64(calls2-calls1), "redis-µs/expiry")
		})
	}
}

// scriptStats is the calls and microseconds Redis counted for EVALSHA.
func scriptStats(b *testing.B) (calls, usec int64) {
	b.Helper()
	info, err := redisAdmin.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_evalsha:"); ok {
			fmt.Sscanf(rest, "calls=%d,usec=%d", &calls, &usec)
		}
	}
	return calls, usec
}

// BenchmarkDecision is one decision through the helper as the plugin asks for it (EVALSHA of
// the decision script, a {floodgate:...} key, bearer token) over loopback HTTP/1.1 with
// keep-alive, on a policy that never rejects; parallel runs 16 clients per core. The client
// shares the process: profile with -cpuprofile and focus on net/http.(*conn).serve to see the
// helper's part.
//
//	go test -run '^$' -bench Decision -cpuprofile cpu.out ./internal/redishelper/
func BenchmarkDecision(b *testing.B) {
	l, err := algorithm.NewLimit(1e9, 1, 0)
	if err != nil {
		b.Fatal(err)
	}
	p, err := algorithm.NewPolicy(algorithm.Absolute, 1, l)
	if err != nil {
		b.Fatal(err)
	}
	if err := redisAdmin.ScriptLoad(b.Context(), redislimit.ScriptFor(p).Source).Err(); err != nil {
		b.Fatal(err)
	}
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{redisAddr}, Username: aclUser, Password: aclPassword, Protocol: 2})
	defer client.Close()
	h, err := New(client, Options{Token: testToken})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(h)
	defer hs.Close()
	bodies := make([][]byte, 1000)
	for i := range bodies {
		bodies[i] = []byte(decide("EVALSHA", fmt.Sprintf("{floodgate:bench:%d}", i), p))
	}
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	decideOnce := func(b *testing.B, i int) {
		req, _ := http.NewRequest(http.MethodPost, hs.URL+"/", bytes.NewReader(bodies[i%len(bodies)]))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		res, err := httpClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte(`{"result":[1,`)) {
			b.Fatalf("%d %s", res.StatusCode, body)
		}
	}
	b.Run("sequential", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			decideOnce(b, i)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				decideOnce(b, i)
			}
		})
	})
}
