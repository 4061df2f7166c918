package redislimit

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/internal/redistest"
	"github.com/redis/go-redis/v9"
)

var rdb *redis.Client

func TestMain(m *testing.M) {
	srv, err := redistest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rdb = redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 2})
	code := m.Run()
	rdb.Close()
	srv.Stop()
	os.Exit(code)
}

func TestScriptSHA(t *testing.T) {
	for _, s := range Scripts() {
		sum := sha1.Sum([]byte(s.Source))
		if got := hex.EncodeToString(sum[:]); got != s.SHA {
			t.Fatalf("script %s: SHA is stale: the script's SHA-1 is %s", s.Name, got)
		}
		sha, err := rdb.ScriptLoad(context.Background(), s.Source).Result()
		if err != nil || sha != s.SHA {
			t.Fatalf("script %s: SCRIPT LOAD: %s %v", s.Name, sha, err)
		}
	}
}

func evalLua(t *testing.T, key string, p *algorithm.Policy, now, cost int64, draw float64) algorithm.Result {
	t.Helper()
	res, err := Result(runScript(t, key, Args(p, cost, draw, now)))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// runScript runs the script on key with args (EVAL: the script may not be loaded yet).
func runScript(t *testing.T, key string, args []string) []int64 {
	t.Helper()
	iargs := make([]any, len(args))
	for i, a := range args {
		iargs[i] = a
	}
	v, err := rdb.Eval(context.Background(), Script, []string{key}, iargs...).Int64Slice()
	if err != nil {
		t.Fatalf("EVAL: %v", err)
	}
	return v
}

func limit(t *testing.T, rate float64, windowS, group int64) algorithm.Limit {
	t.Helper()
	l, err := algorithm.NewLimit(rate, windowS, group)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestDifferential decides the same random traffic with algorithm/ and with the Lua script on a
// real redis-server, with the same clock and draws: every answer must be the same.
func TestDifferential(t *testing.T) {
	if _, err := rdb.ScriptLoad(context.Background(), Script).Result(); err != nil {
		t.Fatal(err)
	}
	policies := []struct {
		name     string
		strategy algorithm.Strategy
		h        float64
		limits   []algorithm.Limit
	}{
		{"absolute one limit", algorithm.Absolute, 1, []algorithm.Limit{limit(t, 10, 1, 100)}},
		{"absolute three limits", algorithm.Absolute, 1, []algorithm.Limit{limit(t, 20, 1, 100), limit(t, 5, 10, 250), limit(t, 1.5, 60, 1000)}},
		{"absolute fractional", algorithm.Absolute, 1, []algorithm.Limit{limit(t, 0.5, 4, 50)}},
		{"suppressed", algorithm.Suppressed, 2, []algorithm.Limit{limit(t, 10, 2, 100)}},
		{"suppressed two limits", algorithm.Suppressed, 1.5, []algorithm.Limit{limit(t, 20, 1, 50), limit(t, 8, 5, 200)}},
	}
	for pi, pc := range policies {
		t.Run(pc.name, func(t *testing.T) {
			p, err := algorithm.NewPolicy(pc.strategy, pc.h, pc.limits...)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(uint64(pi), 42))
			key := fmt.Sprintf("{fg:diff:%d}:s", pi)
			var state []byte
			now := int64(1_700_000_000_000)
			for i := 0; i < 3000; i++ {
				now += rng.Int64N(120)
				if rng.IntN(100) == 0 {
					now -= rng.Int64N(300) // the clock steps back now and then
				}
				cost := 1 + rng.Int64N(3)
				if rng.IntN(200) == 0 {
					cost = 1000 // more than any quota
				}
				draw := rng.Float64()
				next, want := p.Decide(nil, state, now, cost, draw)
				if want.Changed {
					state = next
				}
				got := evalLua(t, key, p, now, cost, draw)
				want.Changed, want.Reset = false, false
				got.Reset = false
				if math.Abs(got.SuppressionFactor-want.SuppressionFactor) > 1e-6 {
					t.Fatalf("request %d: suppression factor %v (lua) vs %v (go)", i, got.SuppressionFactor, want.SuppressionFactor)
				}
				got.SuppressionFactor = want.SuppressionFactor
				if got != want {
					t.Fatalf("request %d at %d cost %d draw %.3f:\n lua %+v\n go  %+v", i, now, cost, draw, got, want)
				}
			}
			// The state Redis holds decodes in Go to the same decisions: the formats are one.
			stored, err := rdb.Get(context.Background(), key).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			_, fromRedis := p.Decide(nil, stored, now, 1, 0.5)
			_, fromGo := p.Decide(nil, state, now, 1, 0.5)
			if fromRedis.Reset || fromRedis != fromGo {
				t.Fatalf("the state Redis wrote decodes differently:\n redis %+v\n go    %+v", fromRedis, fromGo)
			}
			if ttl := rdb.PTTL(context.Background(), key).Val(); ttl <= 0 {
				t.Fatalf("no TTL on the state key: %v", ttl)
			}
		})
	}
}

func TestRedisTimeIsTheDefaultClock(t *testing.T) {
	p, _ := algorithm.NewPolicy(algorithm.Absolute, 1, limit(t, 2, 1, 100))
	for i, want := range []bool{true, true, false} {
		if got := evalLua(t, "{fg:time}:s", p, -1, 1, 0); got.Allowed != want {
			t.Fatalf("request %d: allowed %v", i, got.Allowed)
		}
	}
}
