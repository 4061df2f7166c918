package algorithm

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func mustPolicyOpts(t testing.TB, o PolicyOptions, limits ...Limit) *Policy {
	t.Helper()
	p, err := NewPolicyOpts(o, limits...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// op is one operation of a scenario on one key, and what its answer must say.
type op struct {
	at   int64  // ms
	do   string // decide, check, block, record, reset
	cost int64  // 1 when 0
	// allowed, reason, retry (RetryAfterMs) and remaining are checked; retry and remaining when
	// >= 0.
	allowed   bool
	reason    Reason
	retry     int64
	remaining int64
}

// runOps applies ops to one key of p, checking each answer.
func runOps(t *testing.T, p *Policy, ops []op) {
	t.Helper()
	var st []byte
	for i, o := range ops {
		cost := max(o.cost, 1)
		var res Result
		switch o.do {
		case "decide":
			var next []byte
			if next, res = p.Decide(nil, st, o.at, cost, 0.5); res.Changed {
				st = next
			}
		case "check":
			before := bytes.Clone(st)
			res = p.Check(st, o.at, cost)
			if !bytes.Equal(before, st) || res.Changed {
				t.Fatalf("op %d: Check changed the state", i)
			}
		case "block":
			var next []byte
			if next, res = p.Block(nil, st, o.at, cost); res.Changed {
				st = next
			}
		case "record":
			st, res = p.Record(nil, st, o.at, cost)
		case "reset":
			st = p.Reset(nil, o.at)
			continue
		default:
			t.Fatalf("op %d: unknown %q", i, o.do)
		}
		if res.Allowed != o.allowed || res.Reason != o.reason ||
			(o.retry >= 0 && res.RetryAfterMs != o.retry) || (o.remaining >= 0 && res.Remaining != o.remaining) {
			t.Fatalf("op %d (%s at %d ms): %+v\nwant allowed=%v reason=%v retry=%d remaining=%d",
				i, o.do, o.at, res, o.allowed, o.reason, o.retry, o.remaining)
		}
	}
}

const minute = 60_000

// TestResponseCountingSpecVectors are SPEC.md's vectors for check, record, reset and blocks.
func TestResponseCountingSpecVectors(t *testing.T) {
	logins := mustPerPeriod(t, 5, 600) // 5 failed logins per 10 minutes
	at := func(m, s int64) int64 { return m*minute + s*1000 }
	cases := []struct {
		name string
		p    *Policy
		ops  []op
	}{
		{"5 failed logins per 10 min, block 10 min: the 6th failure blocks", mustPolicyOpts(t, PolicyOptions{Strategy: Absolute, BlockMs: 10 * minute}, logins), []op{
			{at: at(0, 0), do: "check", allowed: true, retry: 0, remaining: 5},
			{at: at(0, 0), do: "record", allowed: true, retry: 0, remaining: 4},
			{at: at(0, 30), do: "record", allowed: true, retry: 0, remaining: 3},
			{at: at(1, 0), do: "reset"}, // a successful login clears the 2 failures
			{at: at(1, 0), do: "check", allowed: true, retry: 0, remaining: 5},
			{at: at(1, 30), do: "record", allowed: true, retry: 0, remaining: 4},
			{at: at(2, 0), do: "record", allowed: true, retry: 0, remaining: 3},
			{at: at(2, 30), do: "record", allowed: true, retry: 0, remaining: 2},
			{at: at(2, 45), do: "record", allowed: true, retry: 0, remaining: 1},
			// The 5th failure takes the last unit: no room until the first leaves, at 11:30.
			{at: at(2, 50), do: "record", allowed: true, retry: at(8, 40), remaining: 0},
			{at: at(2, 55), do: "check", reason: ReasonQuotaExhausted, retry: at(8, 35), remaining: 0},
			// A 6th failure (its request was checked before the 5th was counted) finds no room.
			{at: at(3, 0), do: "record", reason: ReasonQuotaExhausted, retry: 10 * minute, remaining: 0},
			{at: at(12, 59) + 999, do: "check", reason: ReasonBlocked, retry: 1, remaining: 0},
			{at: at(12, 59) + 999, do: "decide", reason: ReasonBlocked, retry: 1, remaining: 0},
			{at: at(13, 0), do: "check", allowed: true, retry: 0, remaining: 5},
		}},
		{"the check's rejection starts the block (Block)", mustPolicyOpts(t, PolicyOptions{Strategy: Absolute, BlockMs: 10 * minute}, logins), []op{
			{at: 0, do: "record", cost: 5, allowed: true, retry: 10 * minute, remaining: 0},
			{at: at(2, 0), do: "block", reason: ReasonQuotaExhausted, retry: 10 * minute, remaining: 0},
			{at: at(2, 1), do: "block", reason: ReasonBlocked, retry: 10*minute - 1000, remaining: 0},
			{at: at(10, 0), do: "check", reason: ReasonBlocked, retry: 2 * minute, remaining: 0},
			{at: at(12, 0), do: "check", allowed: true, retry: 0, remaining: 5},
		}},
		{"without a block, Block is Check", mustPolicy(t, Absolute, 1, logins), []op{
			{at: 0, do: "record", cost: 5, allowed: true, retry: 10 * minute, remaining: 0},
			{at: at(2, 0), do: "block", reason: ReasonQuotaExhausted, retry: 8 * minute, remaining: 0},
			{at: at(10, 0), do: "check", allowed: true, retry: 0, remaining: 5},
		}},
		{"decide: the rejection starts the block, told in its Retry-After", mustPolicyOpts(t, PolicyOptions{Strategy: Absolute, BlockMs: 30_000}, mustPerPeriod(t, 2, 10)), []op{
			{at: 0, do: "decide", allowed: true, retry: 0, remaining: 1},
			{at: 0, do: "decide", allowed: true, retry: 0, remaining: 0},
			{at: 1000, do: "decide", reason: ReasonQuotaExhausted, retry: 30_000, remaining: 0},
			{at: 11_000, do: "decide", reason: ReasonBlocked, retry: 20_000, remaining: 0}, // the window is empty, the block holds
			{at: 31_000, do: "decide", allowed: true, retry: 0, remaining: 1},
		}},
		{"a block shorter than the wait: Retry-After is the wait, and the next rejection blocks again", mustPolicyOpts(t, PolicyOptions{Strategy: Absolute, BlockMs: 1000}, mustPerPeriod(t, 2, 10)), []op{
			{at: 0, do: "decide", cost: 2, allowed: true, retry: 0, remaining: 0},
			{at: 1000, do: "decide", reason: ReasonQuotaExhausted, retry: 9000, remaining: 0},
			{at: 1500, do: "decide", reason: ReasonBlocked, retry: 500, remaining: 0},
			{at: 2000, do: "decide", reason: ReasonQuotaExhausted, retry: 8000, remaining: 0},
			{at: 2999, do: "decide", reason: ReasonBlocked, retry: 1, remaining: 0},
		}},
		{"a cost that can never fit starts no block", mustPolicyOpts(t, PolicyOptions{Strategy: Absolute, BlockMs: 60_000}, mustPerPeriod(t, 2, 10)), []op{
			{at: 0, do: "decide", cost: 3, reason: ReasonCostExceedsQuota, retry: 0, remaining: 2},
			{at: 0, do: "decide", allowed: true, retry: 0, remaining: 1},
		}},
		{"suppressed: a shed starts no block, the hard limit does", mustPolicyOpts(t, PolicyOptions{Strategy: Suppressed, HardLimitFactor: 3, BlockMs: 5000}, mustPerPeriod(t, 2, 1)), []op{
			{at: 0, do: "decide", cost: 2, allowed: true, retry: 0, remaining: 0},
			{at: 0, do: "decide", cost: 3, allowed: true, retry: 0, remaining: 0},      // sf 1 - 2/2
			{at: 0, do: "decide", reason: ReasonSuppressed, retry: 1000, remaining: 0}, // sf 1 - 2/5 > draw 0.5
			{at: 0, do: "decide", cost: 2, reason: ReasonHardLimit, retry: 5000, remaining: 0},
			{at: 2000, do: "decide", reason: ReasonBlocked, retry: 3000, remaining: 0},
		}},
		{"gcra 10/s, block 5 s", mustPolicyOpts(t, PolicyOptions{Strategy: GCRA, BlockMs: 5000}, mustLimit(t, 10, 1, 0)), []op{
			{at: 0, do: "decide", cost: 10, allowed: true, retry: 0, remaining: 0},
			{at: 50, do: "decide", reason: ReasonQuotaExhausted, retry: 5000, remaining: 0},
			{at: 1000, do: "decide", reason: ReasonBlocked, retry: 4050, remaining: 0},
			{at: 5050, do: "decide", allowed: true, retry: 0, remaining: 9},
		}},
		{"token bucket 1/s burst 3: records past the burst keep it empty", mustPolicy(t, TokenBucket, 1, mustBucket(t, 1, 3)), []op{
			{at: 0, do: "record", cost: 3, allowed: true, retry: 1000, remaining: 0},
			{at: 0, do: "record", cost: 2, reason: ReasonQuotaExhausted, retry: 3000, remaining: 0},
			// Far past the burst: the TAT stops at now + 2 refills (6 s), trusted, not reset.
			{at: 0, do: "record", cost: 100, reason: ReasonCostExceedsQuota, retry: 4000, remaining: 0},
			{at: 3999, do: "check", reason: ReasonQuotaExhausted, retry: 1, remaining: 0},
			{at: 4000, do: "check", allowed: true, retry: 0, remaining: 1},
			{at: 6000, do: "check", allowed: true, retry: 0, remaining: 3},
		}},
		{"gcra: a check never counts", mustPolicy(t, GCRA, 1, mustPerPeriod(t, 2, 1)), []op{
			{at: 0, do: "check", allowed: true, retry: 0, remaining: 2},
			{at: 0, do: "check", allowed: true, retry: 0, remaining: 2},
			{at: 0, do: "check", cost: 3, reason: ReasonCostExceedsQuota, retry: 0, remaining: 2},
			{at: 0, do: "record", cost: 2, allowed: true, retry: 500, remaining: 0},
			{at: 0, do: "check", reason: ReasonQuotaExhausted, retry: 500, remaining: 0},
			{at: 100, do: "reset"},
			{at: 100, do: "check", cost: 2, allowed: true, retry: 0, remaining: 2},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runOps(t, c.p, c.ops) })
	}
}

func TestSuppressedCannotCountOnResponse(t *testing.T) {
	for _, s := range []Strategy{Absolute, Suppressed, GCRA, TokenBucket} {
		err := s.CountsOnResponse()
		if (s == Suppressed) != (err != nil) || (err != nil && !errors.Is(err, ErrResponseCounting)) {
			t.Errorf("%s: %v", s, err)
		}
	}
}

func TestBlockOptions(t *testing.T) {
	l := mustPerPeriod(t, 5, 60)
	plain := mustPolicy(t, Absolute, 1, l)
	blocking := mustPolicyOpts(t, PolicyOptions{Strategy: Absolute, BlockMs: 120_000}, l)
	other := mustPolicyOpts(t, PolicyOptions{Strategy: Absolute, BlockMs: 60_000}, l)
	if plain.BlockMs() != 0 || blocking.BlockMs() != 120_000 {
		t.Fatal("BlockMs")
	}
	if blocking.StateSize() != plain.StateSize()+8 || blocking.Fingerprint() == plain.Fingerprint() || blocking.Fingerprint() == other.Fingerprint() {
		t.Fatal("a block is not in the state's size and fingerprint")
	}
	if plain.LongestWindowMs() != 60_000 || blocking.LongestWindowMs() != 120_000 {
		t.Fatal("the state's time to live does not cover the block")
	}
	// A state written without the block starts afresh under it, and the other way round.
	st, _ := plain.Decide(nil, nil, 0, 5, 0)
	if _, res := blocking.Decide(nil, st, 0, 1, 0); !res.Reset || !res.Allowed {
		t.Fatalf("%+v", res)
	}
	for _, bad := range []int64{-1, MaxBlockMs + 1} {
		if _, err := NewPolicyOpts(PolicyOptions{Strategy: GCRA, BlockMs: bad}, l); err == nil {
			t.Errorf("block %d accepted", bad)
		}
	}
}

// TestLeaseBlocks: a lease that reports rejections starts the block; a blocked key is granted
// nothing, not even what a release frees, and is told when the block ends.
func TestLeaseBlocks(t *testing.T) {
	for _, s := range []Strategy{Absolute, Suppressed, GCRA, TokenBucket} {
		t.Run(s.String(), func(t *testing.T) {
			p := mustPolicyOpts(t, PolicyOptions{Strategy: s, BlockMs: 10_000}, mustPerPeriod(t, 100, 1))
			st, g, _ := p.Lease(nil, nil, 0, Lease{Want: 100})
			if g.Units != 100 {
				t.Fatalf("%+v", g)
			}
			st, g, changed := p.Lease(nil, st, 100, Lease{Release: 100, Used: 100, Denied: 7, Rejected: 7, Want: 10})
			if !changed || g.Units != 0 || g.RetryAfterMs != 10_000 || g.Remaining != 0 || g.ResetAfterMs < 10_000 {
				t.Fatalf("a lease reporting rejections: %+v, want nothing granted and the 10 s block", g)
			}
			st, g, _ = p.Lease(nil, st, 5100, Lease{Want: 10})
			if g.Units != 0 || g.RetryAfterMs != 5000 {
				t.Fatalf("a lease of a blocked key: %+v, want nothing and the block's rest", g)
			}
			if _, res := p.Decide(nil, st, 5100, 1, 0.5); res.Reason != ReasonBlocked || res.RetryAfterMs != 5000 {
				t.Fatalf("a decision of the blocked key: %+v", res)
			}
			if _, g, _ = p.Lease(nil, st, 10_100, Lease{Want: 10}); g.Units != 10 {
				t.Fatalf("after the block: %+v", g)
			}
		})
	}
}

// allStrategies are policies of every strategy with a block, for the properties.
func allStrategies(t testing.TB) []*Policy {
	return []*Policy{
		mustPolicyOpts(t, PolicyOptions{Strategy: Absolute, BlockMs: 1500}, mustLimit(t, 10, 1, 100), mustPerPeriod(t, 30, 5)),
		mustPolicyOpts(t, PolicyOptions{Strategy: Suppressed, HardLimitFactor: 1.5, BlockMs: 700}, mustLimit(t, 10, 2, 100)),
		mustPolicyOpts(t, PolicyOptions{Strategy: GCRA, BlockMs: 2000}, mustLimit(t, 10, 1, 0), mustPerPeriod(t, 30, 5)),
		mustPolicyOpts(t, PolicyOptions{Strategy: TokenBucket, BlockMs: 900}, mustBucket(t, 3.3, 5)),
	}
}

// TestPropertiesOfBlocksChecksAndRecords runs random traffic of every operation on one key of
// every strategy: a blocked key admits nothing until its block ends; Check never changes its
// input and agrees with Decide (absolute and meters) on everything but the count; every answer
// stays in bounds.
func TestPropertiesOfBlocksChecksAndRecords(t *testing.T) {
	for _, p := range allStrategies(t) {
		t.Run(p.Strategy().String(), func(t *testing.T) {
			for seed := uint64(0); seed < 5; seed++ {
				rng := rand.New(rand.NewPCG(seed, 11))
				var st []byte
				now, blockedUntil := int64(1_000_000), int64(0)
				for i := 0; i < 4000; i++ {
					now += rng.Int64N(60)
					if rng.IntN(100) == 0 {
						now -= rng.Int64N(200) // the clock steps back now and then
					}
					cost := 1 + rng.Int64N(3)
					eff := max(now, lastTime(p, st)) // a sliding window's clock never goes back
					before := bytes.Clone(st)
					chk := p.Check(st, now, cost)
					if !bytes.Equal(before, st) || chk.Changed {
						t.Fatalf("seed %d op %d: Check changed the state", seed, i)
					}
					var next []byte
					var res Result
					r := rng.IntN(10)
					switch {
					case r < 6:
						next, res = p.Decide(nil, st, now, cost, rng.Float64())
						if p.Strategy() != Suppressed && (res.Allowed != chk.Allowed || res.Reason != chk.Reason || res.Decider != chk.Decider ||
							(!res.Allowed && res.RetryAfterMs < chk.RetryAfterMs)) {
							t.Fatalf("seed %d op %d: Decide %+v, Check %+v", seed, i, res, chk)
						}
					case r < 8:
						next, res = p.Record(nil, st, now, cost)
						if res.Allowed != chk.Allowed || res.Reason != chk.Reason {
							t.Fatalf("seed %d op %d: Record %+v, Check %+v", seed, i, res, chk)
						}
					case r < 9:
						next, res = p.Block(nil, st, now, cost)
					default:
						st = p.Reset(nil, now)
						blockedUntil = 0
						continue
					}
					if res.Remaining < 0 || res.RetryAfterMs < 0 || res.ResetAfterMs < 0 {
						t.Fatalf("seed %d op %d: %+v", seed, i, res)
					}
					if eff < blockedUntil {
						// A record's Retry-After is when its key has room again: at least the block's rest.
						if res.Allowed || res.Reason != ReasonBlocked || res.Remaining != 0 ||
							res.RetryAfterMs < blockedUntil-eff || (r < 6 && res.RetryAfterMs != blockedUntil-eff) {
							t.Fatalf("seed %d op %d: %+v at %d, blocked until %d", seed, i, res, eff, blockedUntil)
						}
					} else if !res.Allowed && (res.Reason == ReasonQuotaExhausted || res.Reason == ReasonHardLimit) {
						blockedUntil = eff + p.BlockMs()
					}
					if res.Changed {
						st = next
					}
				}
			}
		})
	}
}

// lastTime is the latest time a sliding-window state saw (the clock it blocks on), 0 for a meter.
func lastTime(p *Policy, st []byte) int64 {
	if p.Strategy().Meter() || !p.valid(st) {
		return 0
	}
	return int64(le.Uint64(st[16:]))
}

// TestRecordThenRefundChangesNothing: a record that had room, refunded at once, leaves the key
// deciding later requests exactly as if neither had happened (absolute and meters; suppressed
// keeps a refunded attempt as denied).
func TestRecordThenRefundChangesNothing(t *testing.T) {
	for _, p := range allStrategies(t) {
		if p.Strategy() == Suppressed {
			continue
		}
		t.Run(p.Strategy().String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 5))
			var with, without []byte
			now, checked := int64(1_000_000), 0
			for i := 0; i < 5000; i++ {
				now += rng.Int64N(200)
				cost := 1 + rng.Int64N(2)
				a, ra := p.Decide(nil, with, now, cost, 0)
				b, rb := p.Decide(nil, without, now, cost, 0)
				if ra != rb {
					t.Fatalf("op %d at %d: %+v after a record and its refund, %+v without", i, now, ra, rb)
				}
				if ra.Changed {
					with, without = a, b
				}
				if ra.Allowed && rng.IntN(4) == 0 {
					// At the time of an admission, as a request's response comes: record, refund.
					c := 1 + rng.Int64N(2)
					if p.Check(with, now, c).Allowed {
						next, _ := p.Record(nil, with, now, c)
						with, _ = p.Refund(nil, next, now, now, c)
						checked++
					}
				}
			}
			if checked < 100 {
				t.Fatalf("only %d records refunded", checked)
			}
		})
	}
}

func TestCheckAndRecordDoNotAllocate(t *testing.T) {
	for _, p := range allStrategies(t) {
		buf := make([]byte, p.StateSize())
		state, _ := p.Decide(nil, nil, 0, 1, 0.5)
		now := int64(0)
		if allocs := testing.AllocsPerRun(1000, func() {
			now += 7
			p.Check(state, now, 1)
			next, _ := p.Record(buf, state, now, 1)
			p.Refund(buf, next, now, now, 1)
			p.Block(buf, state, now, 1)
		}); allocs != 0 {
			t.Fatalf("%s: %v allocations per check, record, refund and block", p.Strategy(), allocs)
		}
	}
}
