package redislimit

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/internal/redistest"
	"github.com/floodgate-proxy/floodgate/internal/testlog"
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
	code := testlog.Main(m)
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
	res, err := Result(runScript(t, key, p, Args(p, Call{Cost: cost, Draw: draw, NowMs: now})))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// runScript runs p's script on key with args (EVAL: the script may not be loaded yet).
func runScript(t *testing.T, key string, p *algorithm.Policy, args []string) []int64 {
	t.Helper()
	iargs := make([]any, len(args))
	for i, a := range args {
		iargs[i] = a
	}
	v, err := rdb.Eval(context.Background(), ScriptFor(p).Source, []string{key}, iargs...).Int64Slice()
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

func bucket(t *testing.T, rate float64, burst int64) algorithm.Limit {
	t.Helper()
	l, err := algorithm.NewTokenBucket(rate, burst)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func policy(t *testing.T, s algorithm.Strategy, h float64, limits ...algorithm.Limit) *algorithm.Policy {
	t.Helper()
	p, err := algorithm.NewPolicy(s, h, limits...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func blocking(t *testing.T, s algorithm.Strategy, h float64, blockMs int64, limits ...algorithm.Limit) *algorithm.Policy {
	t.Helper()
	p, err := algorithm.NewPolicyOpts(algorithm.PolicyOptions{Strategy: s, HardLimitFactor: h, BlockMs: blockMs}, limits...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// differentialPolicies covers every strategy, one and several limits, fractional rates, blocks.
func differentialPolicies(t *testing.T) []struct {
	name    string
	p       *algorithm.Policy
	maxCost int64 // 3 when 0
} {
	return []struct {
		name    string
		p       *algorithm.Policy
		maxCost int64
	}{
		{"absolute one limit", policy(t, algorithm.Absolute, 1, limit(t, 10, 1, 100)), 0},
		{"absolute three limits", policy(t, algorithm.Absolute, 1, limit(t, 20, 1, 100), limit(t, 5, 10, 250), limit(t, 1.5, 60, 1000)), 0},
		{"absolute fractional", policy(t, algorithm.Absolute, 1, limit(t, 0.5, 4, 50)), 0},
		{"suppressed", policy(t, algorithm.Suppressed, 2, limit(t, 10, 2, 100)), 0},
		{"suppressed two limits", policy(t, algorithm.Suppressed, 1.5, limit(t, 20, 1, 50), limit(t, 8, 5, 200)), 0},
		{"gcra one limit", policy(t, algorithm.GCRA, 1, limit(t, 10, 1, 0)), 0},
		{"gcra two limits, fractional", policy(t, algorithm.GCRA, 1, limit(t, 7, 1, 0), limit(t, 1.5, 20, 0)), 0},
		{"token bucket", policy(t, algorithm.TokenBucket, 1, bucket(t, 3.3, 5)), 0},
		{"token bucket two limits", policy(t, algorithm.TokenBucket, 1, bucket(t, 20, 4), bucket(t, 0.7, 12)), 0},
		// Blocks: the block's end in the state, and every mode honouring it.
		{"absolute two limits, block", blocking(t, algorithm.Absolute, 1, 700, limit(t, 10, 1, 100), limit(t, 3, 10, 1000)), 0},
		{"suppressed, block", blocking(t, algorithm.Suppressed, 2, 1500, limit(t, 10, 2, 100)), 0},
		{"gcra two limits, block", blocking(t, algorithm.GCRA, 1, 400, limit(t, 7, 1, 0), limit(t, 1.5, 20, 0)), 0},
		{"token bucket, block", blocking(t, algorithm.TokenBucket, 1, 2500, bucket(t, 3.3, 5)), 0},
		// Windows longer than 2^30 ms: the clock's jumps rebase offsets while buckets are live.
		{"absolute, 20-day window", policy(t, algorithm.Absolute, 1, limit(t, 10, 1, 100), limit(t, 0.0005, 1_728_000, 0)), 0},
		{"suppressed, 20-day window", policy(t, algorithm.Suppressed, 2, limit(t, 0.0005, 1_728_000, 0)), 0},
		{"absolute, 20-day window and block", blocking(t, algorithm.Absolute, 1, 30_000, limit(t, 0.0005, 1_728_000, 0)), 0},
		// Buckets above 65535 units: suppressed records need a continuation in Redis.
		{"suppressed, heavy costs", policy(t, algorithm.Suppressed, 3, limit(t, 300_000, 2, 100)), 60_000},
		{"absolute, heavy costs", policy(t, algorithm.Absolute, 1, limit(t, 3_000_000, 1, 100)), 600_000},
	}
}

// TestDifferential runs the same random traffic through algorithm/ and the Lua scripts on a real
// redis-server, with the same clock and draws: decisions, checks, blocks, records (costs beyond
// any quota among them), resets, refunds of earlier admissions, and, in a second run, hybrid
// leases (reporting rejections now and then). Every answer must be the same.
func TestDifferential(t *testing.T) {
	for pi, pc := range differentialPolicies(t) {
		for _, leases := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/leases=%v", pc.name, leases), func(t *testing.T) {
				differential(t, pc.p, fmt.Sprintf("{fg:diff:%d:%v}:s", pi, leases), uint64(pi), leases, max(pc.maxCost, 3))
			})
		}
	}
}

func differential(t *testing.T, p *algorithm.Policy, key string, seed uint64, leases bool, maxCost int64) {
	rdb.Del(context.Background(), key)
	rng := rand.New(rand.NewPCG(seed, 42))
	var state []byte
	now := int64(1_700_000_000_000)
	var lastGrant algorithm.Grant
	type admission struct{ at, cost int64 }
	var admitted []admission // recent admissions (their time on Redis's clock), for refunds
	modes, reasons, refunds := map[Mode]int{}, map[algorithm.Reason]int{}, 0
	for i := 0; i < 3000; i++ {
		now += rng.Int64N(120)
		switch r := rng.IntN(1000); {
		case r < 10:
			now -= rng.Int64N(300) // the clock steps back now and then
		case r == 10 || i == 1500:
			now += 1<<30 + rng.Int64N(5000) // a long idle time: offsets are rebased
		}
		if leases && rng.IntN(8) == 0 {
			l := algorithm.Lease{Want: rng.Int64N(3 * maxCost)}
			if lastGrant.Units > 0 || rng.IntN(4) == 0 {
				l.Release, l.ReleaseAtMs = lastGrant.Units, lastGrant.AtMs
				l.Used = rng.Int64N(l.Release + 2)
				l.Denied = rng.Int64N(maxCost)
				if rng.IntN(4) == 0 {
					l.Rejected = rng.Int64N(l.Denied + 1)
				}
				if rng.IntN(2) == 0 {
					l.UsedAtMs = now - rng.Int64N(200)
				}
			}
			next, want, changed := p.Lease(nil, state, now, l)
			if changed {
				state = next
			}
			got, err := GrantOf(runScript(t, key, p, LeaseArgs(p, l, Call{NowMs: now})))
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got.SuppressionFactor-want.SuppressionFactor) > 1e-6 {
				t.Fatalf("lease %d: suppression factor %v (lua) vs %v (go)", i, got.SuppressionFactor, want.SuppressionFactor)
			}
			got.SuppressionFactor = want.SuppressionFactor
			if got != want {
				t.Fatalf("lease %d at %d %+v:\n lua %+v\n go  %+v", i, now, l, got, want)
			}
			lastGrant = want
			continue
		}
		c := Call{Cost: 1 + rng.Int64N(maxCost), Draw: rng.Float64(), NowMs: now}
		if rng.IntN(200) == 0 {
			c.Cost = 1000 * maxCost // more than any quota
		}
		switch r := rng.IntN(100); {
		case r < 55:
		case r < 65:
			c.Mode = ModeCheck
		case r < 71:
			c.Mode = ModeBlock
		case r < 85:
			c.Mode = ModeRecord
		case r < 88:
			c.Mode = ModeReset
		case len(admitted) > 0:
			a := admitted[rng.IntN(len(admitted))]
			c.Mode, c.Cost, c.AtMs = ModeRefund, a.cost, a.at
		}
		modes[c.Mode]++
		var want algorithm.Result
		switch c.Mode {
		case ModeDecide:
			var next []byte
			if next, want = p.Decide(nil, state, now, c.Cost, c.Draw); want.Changed {
				state = next
			}
		case ModeCheck:
			want = p.Check(state, now, c.Cost)
		case ModeBlock:
			var next []byte
			if next, want = p.Block(nil, state, now, c.Cost); want.Changed {
				state = next
			}
		case ModeRecord:
			state, want = p.Record(nil, state, now, c.Cost)
		case ModeReset:
			state = p.Reset(nil, now)
			want = p.Check(state, now, c.Cost)
		case ModeRefund:
			if next, changed := p.Refund(nil, state, now, c.AtMs, c.Cost); changed {
				state = next
				refunds++
			}
			want = p.Check(state, now, c.Cost)
		}
		got, redisNow, err := ResultAt(runScript(t, key, p, Args(p, c)))
		if err != nil {
			t.Fatal(err)
		}
		want.Changed, want.Reset = false, false
		got.Reset = false
		if math.Abs(got.SuppressionFactor-want.SuppressionFactor) > 1e-6 {
			t.Fatalf("call %d (mode %d): suppression factor %v (lua) vs %v (go)", i, c.Mode, got.SuppressionFactor, want.SuppressionFactor)
		}
		got.SuppressionFactor = want.SuppressionFactor
		if got != want {
			t.Fatalf("call %d at %d %+v:\n lua %+v\n go  %+v", i, now, c, got, want)
		}
		reasons[got.Reason]++
		if c.Mode == ModeDecide && got.Allowed {
			if admitted = append(admitted, admission{redisNow, c.Cost}); len(admitted) > 50 {
				admitted = admitted[1:]
			}
		}
	}
	for m := ModeDecide; m <= ModeRefund; m++ {
		if modes[m] < 20 {
			t.Fatalf("mode %d ran %d times: the traffic does not test it", m, modes[m])
		}
	}
	if refunds < 10 || (p.BlockMs() > 0 && reasons[algorithm.ReasonBlocked] < 20) {
		t.Fatalf("%d refunds gave units back, %d answers said blocked: the traffic does not test them", refunds, reasons[algorithm.ReasonBlocked])
	}
	stored, err := rdb.Get(context.Background(), key).Bytes()
	if err != nil && !p.Strategy().Meter() {
		t.Fatal(err) // a sliding window's state lives a window at least
	}
	if ttl := rdb.PTTL(context.Background(), key).Val(); err == nil && ttl <= 0 {
		t.Fatalf("no TTL on the state key: %v", ttl)
	}
	if p.Strategy() == algorithm.Suppressed && maxCost > 1<<15 {
		// The heavy cases did exercise continuation records (FORMAT.md).
		if !strings.Contains(string(stored), "\xff\xff\xff\xff") {
			t.Fatal("no continuation record in the state: the case does not test them")
		}
	}
	if p.Strategy().Meter() {
		// A meter's Redis state is the local one without its 8-byte header (a full meter, as a
		// reset leaves it, may be gone: it expires at once).
		if err != nil {
			stored = make([]byte, len(state)-8)
		}
		if !bytes.Equal(stored, state[8:]) {
			t.Fatalf("Redis holds %x, Go %x", stored, state[8:])
		}
	}
}

func TestRedisTimeIsTheDefaultClock(t *testing.T) {
	for i, p := range []*algorithm.Policy{
		policy(t, algorithm.Absolute, 1, limit(t, 2, 1, 100)),
		policy(t, algorithm.GCRA, 1, limit(t, 2, 1, 0)),
	} {
		for j, want := range []bool{true, true, false} {
			if got := evalLua(t, fmt.Sprintf("{fg:time:%d}:s", i), p, -1, 1, 0); got.Allowed != want {
				t.Fatalf("%s request %d: allowed %v", p.Strategy(), j, got.Allowed)
			}
		}
	}
}

// TestDeadline: a call that reaches Redis after its deadline changes nothing and says so, in
// every script and mode; one in time is decided.
func TestDeadline(t *testing.T) {
	const now = int64(1_700_000_000_000)
	for i, p := range []*algorithm.Policy{
		policy(t, algorithm.Absolute, 1, limit(t, 2, 1, 100)),
		policy(t, algorithm.Suppressed, 2, limit(t, 2, 1, 100)),
		blocking(t, algorithm.GCRA, 1, 1000, limit(t, 2, 1, 0)),
		policy(t, algorithm.TokenBucket, 1, bucket(t, 2, 2)),
	} {
		key := fmt.Sprintf("{fg:deadline:%d}:s", i)
		rdb.Del(context.Background(), key)
		for m := ModeDecide; m <= ModeRefund; m++ {
			late := Call{Mode: m, Cost: 1, NowMs: now, DeadlineMs: now - 1, AtMs: now - 10}
			if _, err := Result(runScript(t, key, p, Args(p, late))); !errors.Is(err, ErrDeadlinePassed) {
				t.Fatalf("%s: a late call of mode %d answered %v", p.Strategy(), m, err)
			}
		}
		late := Call{Cost: 1, NowMs: now, DeadlineMs: now - 1}
		if _, err := GrantOf(runScript(t, key, p, LeaseArgs(p, Lease{Want: 2}, late))); !errors.Is(err, ErrDeadlinePassed) {
			t.Fatalf("%s: a late lease answered %v", p.Strategy(), err)
		}
		if n := rdb.Exists(context.Background(), key).Val(); n != 0 {
			t.Fatalf("%s: a late call wrote the key", p.Strategy())
		}
		for j := 0; j < 2; j++ {
			res, err := Result(runScript(t, key, p, Args(p, Call{Cost: 1, NowMs: now, DeadlineMs: now})))
			if err != nil || !res.Allowed {
				t.Fatalf("%s: a decision in time: %+v %v", p.Strategy(), res, err)
			}
		}
	}
}
