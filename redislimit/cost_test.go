package redislimit

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/redis/go-redis/v9"
)

// TestRedisCost measures, on this package's redis-server, the Redis CPU time per decision (INFO
// cpu, user + sys, over every decision of a run) and the bytes per key (MEMORY USAGE, key name
// included) of each script, side by side in one run: 1000 keys, a limit of 100 per window of
// 1 s, 60 s and 1 h. It asserts nothing (figures depend on the machine): run it with
//
//	FLOODGATE_REDIS_COST=1 go test -run TestRedisCost -v ./redislimit/
//
// The previous sliding-window script (testdata/decide_v1.lua, its full ring of buckets) is
// measured too. FLOODGATE_REDIS_COST_WINDOW=60 measures one window (seconds), and
// FLOODGATE_REDIS_COST_ONLY=a,b the scripts whose names contain a or b. FLOODGATE_REDIS_COST_GCRA=file adds another GCRA script taking KEYS[1] and ARGV
// burst, rate, period (s), cost, with Redis TIME as its clock (go-redis/redis_rate's, for one).
//
// Runs, each script in turn, three times, the best of three kept (the machine is shared):
// "time": 20 decisions for each of 1000 keys on Redis TIME, all admitted (the production path);
// then on a pinned clock, 40 keys (so that a run ends well within the keys' TTL, which is on
// Redis's real clock): "90%": 90 decisions per key per window spread evenly over it, measured
// from the second window on (a key then holds about 90 buckets), all admitted; "half": twice
// the limit spread over one window (four times for meters, which refill as they go), about half
// rejected. Bytes: after 100 decisions per key spread over one window.
func TestRedisCost(t *testing.T) {
	if os.Getenv("FLOODGATE_REDIS_COST") == "" {
		t.Skip("set FLOODGATE_REDIS_COST=1 to measure")
	}
	ctx := context.Background()
	v1, err := os.ReadFile("testdata/decide_v1.lua")
	if err != nil {
		t.Fatal(err)
	}
	var extra []byte
	if f := os.Getenv("FLOODGATE_REDIS_COST_GCRA"); f != "" {
		if extra, err = os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
	}
	const keys, pinnedKeys = 1000, 40
	fmt.Printf("%-22s %6s %10s %10s %10s %10s\n", "script", "window", "µs time", "µs 90%", "µs half", "bytes/key")
	windows := []int64{1, 60, 3600}
	if w := os.Getenv("FLOODGATE_REDIS_COST_WINDOW"); w != "" {
		n, _ := strconv.ParseInt(w, 10, 64)
		windows = []int64{n}
	}
	for _, windowS := range windows {
		l, _ := algorithm.PerPeriod(100, windowS, 0)
		abs := policy(t, algorithm.Absolute, 1, l)
		sup := policy(t, algorithm.Suppressed, 2, l)
		gl, _ := algorithm.PerPeriod(100, windowS, 0)
		gcra := policy(t, algorithm.GCRA, 1, gl)
		tl, _ := algorithm.NewTokenBucket(100/float64(windowS), 100)
		tb := policy(t, algorithm.TokenBucket, 1, tl)
		type script struct {
			name   string
			source string
			args   func(cost, now int64, draw float64) []any // now < 0: Redis TIME
			pinned bool
		}
		ours := func(p *algorithm.Policy) func(cost, now int64, draw float64) []any {
			return func(cost, now int64, draw float64) []any {
				return anys(Args(p, Call{Cost: cost, Draw: draw, NowMs: now}))
			}
		}
		v1args := func(p *algorithm.Policy) func(cost, now int64, draw float64) []any {
			return func(cost, now int64, draw float64) []any {
				nowArg := ""
				if now >= 0 {
					nowArg = strconv.FormatInt(now, 10)
				}
				l := p.Limits()[0]
				return []any{cost, strconv.FormatFloat(draw, 'g', -1, 64), nowArg, int(p.Strategy()), p.Fingerprint(), 1,
					l.Quota, l.WindowMs, l.GroupMs, strconv.FormatFloat(l.Rate, 'g', -1, 64), p.HardQuota(0), l.Buckets()}
			}
		}
		scripts := []script{
			{"decide_v1 absolute", string(v1), v1args(abs), true},
			{"decide absolute", decideSource, ours(abs), true},
			{"decide_v1 suppressed", string(v1), v1args(sup), true},
			{"decide suppressed", decideSource, ours(sup), true},
			{"meter gcra", meterSource, ours(gcra), true},
			{"meter token_bucket", meterSource, ours(tb), true},
		}
		if extra != nil {
			scripts = append(scripts, script{"other gcra", string(extra), func(cost, _ int64, _ float64) []any {
				return []any{100, 100, windowS, cost}
			}, false})
		}
		if only := os.Getenv("FLOODGATE_REDIS_COST_ONLY"); only != "" {
			scripts = slices.DeleteFunc(scripts, func(s script) bool {
				return !slices.ContainsFunc(strings.Split(only, ","), func(o string) bool { return strings.Contains(s.name, o) })
			})
		}
		type figures struct{ time, spread, half, rejected float64 }
		best := make([]figures, len(scripts))
		bytes := make([]int64, len(scripts))
		for rep := 0; rep < 3; rep++ { // interleaved, the best of three: the machine is shared
			for si, s := range scripts {
				sha, err := rdb.ScriptLoad(ctx, s.source).Result()
				if err != nil {
					t.Fatal(err)
				}
				key := func(k int) string { return fmt.Sprintf("{floodgate:cost-%d-%d:%016x%016x}", windowS, si, k, k*7919) }
				run := func(keys, rounds int, at func(round int) int64, measureFrom int) (us float64, rejected float64) {
					flush(t)
					var cpu float64
					var n, denied int
					for r := 0; r < rounds; r++ {
						if r == measureFrom {
							cpu = cpuSeconds(t)
						}
						now := at(r)
						pipe := rdb.Pipeline()
						cmds := make([]*redis.Cmd, 0, keys)
						for k := 0; k < keys; k++ {
							cmds = append(cmds, pipe.EvalSha(ctx, sha, []string{key(k)}, s.args(1, now, float64(k%100)/100)...))
						}
						if _, err := pipe.Exec(ctx); err != nil {
							t.Fatalf("%s: %v", s.name, err)
						}
						if r >= measureFrom {
							for _, c := range cmds {
								v, _ := c.Slice()
								n++
								if len(v) > 0 && v[0] == int64(0) {
									denied++
								}
							}
						}
					}
					return (cpuSeconds(t) - cpu) * 1e6 / float64(n), float64(denied) / float64(n)
				}
				const t0 = int64(1_800_000_000_000)
				w := windowS * 1000
				var f figures
				f.time, _ = run(keys, 20, func(int) int64 { return -1 }, 0)
				if s.pinned {
					f.spread, _ = run(pinnedKeys, 135, func(r int) int64 { return t0 + int64(r)*w/90 }, 90)
					per := int64(200) // twice the limit: half rejected by a sliding window
					if strings.HasPrefix(s.name, "meter") {
						per = 400 // a meter refills while it is hit: twice as many for half rejected
					}
					f.half, f.rejected = run(pinnedKeys, int(per), func(r int) int64 { return t0 + int64(r)*w/per }, 0)
					run(pinnedKeys, 100, func(r int) int64 { return t0 + int64(r)*w/100 }, 0)
				}
				bytes[si] = 0
				for k := 0; k < pinnedKeys; k += 5 {
					bytes[si] += rdb.MemoryUsage(ctx, key(k), 0).Val()
				}
				bytes[si] /= pinnedKeys / 5
				if b := &best[si]; rep == 0 {
					*b = f
				} else {
					b.time, b.spread, b.half = min(b.time, f.time), min(b.spread, f.spread), min(b.half, f.half)
				}
			}
		}
		for si, s := range scripts {
			f := best[si]
			fmt.Printf("%-22s %5ds %10.1f %10.1f %10.1f %10d   (half: %.0f%% rejected)\n", s.name, windowS, f.time, f.spread, f.half, bytes[si], 100*f.rejected)
		}
	}
}

func flush(t *testing.T) {
	t.Helper()
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
}

// cpuSeconds is the server's used_cpu_user + used_cpu_sys.
func cpuSeconds(t *testing.T) float64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, _ := strconv.ParseFloat(v, 64)
			sum += f
		}
	}
	return sum
}

func anys(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
