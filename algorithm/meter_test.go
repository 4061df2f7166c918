package algorithm

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func mustBucket(t testing.TB, rate float64, burst int64) Limit {
	t.Helper()
	l, err := NewTokenBucket(rate, burst)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestMeterSpecVectors are SPEC.md's vectors for gcra and token_bucket.
func TestMeterSpecVectors(t *testing.T) {
	ten := mustPolicy(t, GCRA, 1, mustLimit(t, 10, 1, 0)) // T = 100 ms, burst 10
	cases := []struct {
		name  string
		p     *Policy
		steps []step
	}{
		{"gcra 10/s: a burst of 10, then one every 100 ms", ten, concat(
			repeat(10, step{at: 0, allowed: true, retry: 0, remaining: 9}),
			[]step{
				{at: 0, allowed: false, retry: 100, remaining: 0, reason: ReasonQuotaExhausted},
				{at: 50, allowed: false, retry: 50, remaining: 0, reason: ReasonQuotaExhausted},
				{at: 100, allowed: true, retry: 0, remaining: 0},
				{at: 150, allowed: false, retry: 50, remaining: 0, reason: ReasonQuotaExhausted},
				{at: 1200, allowed: true, retry: 0, remaining: 9}, // full again after 1 s idle
			})},
		{"gcra 100/m: T = 600 ms", mustPolicy(t, GCRA, 1, mustPerPeriod(t, 100, 60)), concat(
			repeat(100, step{at: 0, allowed: true, retry: 0, remaining: 99}),
			[]step{
				{at: 1, allowed: false, retry: 599, remaining: 0, reason: ReasonQuotaExhausted},
				{at: 600, allowed: true, retry: 0, remaining: 0},
			})},
		{"token bucket 0.5/s, burst 3: one token every 2 s", mustPolicy(t, TokenBucket, 1, mustBucket(t, 0.5, 3)), concat(
			repeat(3, step{at: 0, allowed: true, retry: 0, remaining: 2}),
			[]step{
				{at: 0, allowed: false, retry: 2000, remaining: 0, reason: ReasonQuotaExhausted},
				{at: 1999, allowed: false, retry: 1, remaining: 0, reason: ReasonQuotaExhausted},
				{at: 2000, allowed: true, retry: 0, remaining: 0},
				{at: 5000, allowed: true, retry: 0, remaining: 0}, // 1.5 tokens back: one whole
				{at: 6000, allowed: true, retry: 0, remaining: 0},
			})},
		{"token bucket: weighted costs", mustPolicy(t, TokenBucket, 1, mustBucket(t, 10, 5)), []step{
			{at: 0, cost: 4, allowed: true, retry: 0, remaining: 1},
			{at: 0, cost: 2, allowed: false, retry: 100, remaining: 1, reason: ReasonQuotaExhausted},
			{at: 100, cost: 2, allowed: true, retry: 0, remaining: 0},
			{at: 100, cost: 6, allowed: false, retry: 0, remaining: 0, reason: ReasonCostExceedsQuota},
			{at: 100, cost: 5, allowed: false, retry: 500, remaining: 0, reason: ReasonQuotaExhausted},
		}},
		{"token bucket: fractional rate 3.3/s (T = 303031 µs)", mustPolicy(t, TokenBucket, 1, mustBucket(t, 3.3, 2)), []step{
			{at: 0, allowed: true, retry: 0, remaining: 1},
			{at: 0, allowed: true, retry: 0, remaining: 0},
			{at: 0, allowed: false, retry: 304, remaining: 0, reason: ReasonQuotaExhausted},
			{at: 303, allowed: false, retry: 1, remaining: 0, reason: ReasonQuotaExhausted},
			{at: 304, allowed: true, retry: 0, remaining: 0},
		}},
		{"several limits: admitted only if every one admits, counted in all", mustPolicy(t, TokenBucket, 1, mustBucket(t, 100, 3), mustBucket(t, 1, 4)), concat(
			repeat(3, step{at: 0, allowed: true, retry: 0, remaining: 2}),
			[]step{
				{at: 0, allowed: false, retry: 10, remaining: 0, reason: ReasonQuotaExhausted},
				{at: 10, allowed: true, retry: 0, remaining: 0},                                  // the second limit's last token
				{at: 20, allowed: false, retry: 980, remaining: 0, reason: ReasonQuotaExhausted}, // the first has a token, the second none until 1 s
			})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runSteps(t, c.p, c.steps) })
	}
}

func TestMeterResultFields(t *testing.T) {
	p := mustPolicy(t, GCRA, 1, mustPerPeriod(t, 100, 60), mustLimit(t, 10, 1, 0))
	k := &keyState{p: p}
	res := k.decide(t, 0, 4, 0)
	// The per-second limit is tighter: 6 left of 10, full again in 400 ms.
	if !res.Allowed || res.Limit != 10 || res.WindowMs != 1000 || res.Remaining != 6 || res.ResetAfterMs != 400 || res.Decider != -1 {
		t.Fatalf("%+v", res)
	}
	if got := p.LongestWindowMs(); got != 60000 {
		t.Fatalf("LongestWindowMs %d, want the 60 s refill", got)
	}
	if got := p.ShortestWindowMs(); got != 1000 {
		t.Fatalf("ShortestWindowMs %d", got)
	}
	b := mustPolicy(t, TokenBucket, 1, mustBucket(t, 3, 7)) // refills in 2.333 s
	if l := b.Limits()[0]; l.WindowMs != 3000 || b.LongestWindowMs() != 3000 || b.IntervalUs(0) != 333334 {
		t.Fatalf("window %d, longest %d, T %d", l.WindowMs, b.LongestWindowMs(), b.IntervalUs(0))
	}
	if b.StateSize() != 16 || b.HardQuota(0) != 7 {
		t.Fatalf("state size %d, hard quota %d", b.StateSize(), b.HardQuota(0))
	}
}

func TestMeterLimitsAndPoliciesRefused(t *testing.T) {
	for _, c := range []struct {
		name  string
		build func() error
	}{
		{"rate 0", func() error { _, err := NewTokenBucket(0, 1); return err }},
		{"burst 0", func() error { _, err := NewTokenBucket(1, 0); return err }},
		{"refill longer than 31 days", func() error { _, err := NewTokenBucket(1e-6, 10); return err }},
		{"hard limit factor", func() error { _, err := NewPolicy(GCRA, 2, mustLimit(t, 1, 1, 0)); return err }},
		{"unknown strategy", func() error { _, err := NewPolicy(5, 1, mustLimit(t, 1, 1, 0)); return err }},
	} {
		if err := c.build(); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

// TestGCRANeverAdmitsMoreThanBurstPlusRate: over any interval of t, a meter admits at most
// burst + t/T units, whatever the traffic, the costs and a clock that steps back (by less than
// a refill time: further back, the key starts afresh).
func TestGCRANeverAdmitsMoreThanBurstPlusRate(t *testing.T) {
	for seed := uint64(0); seed < 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 3))
		l := mustBucket(t, 0.5+rng.Float64()*50, 1+rng.Int64N(20))
		strategy := TokenBucket
		if seed%2 == 0 {
			l = mustLimit(t, 0.5+rng.Float64()*50, 1+rng.Int64N(5), 0)
			strategy = GCRA
		}
		p := mustPolicy(t, strategy, 1, l)
		T, burst := p.IntervalUs(0), l.Quota
		k := &keyState{p: p}
		type event struct{ at, cost int64 }
		var admitted []event
		now := int64(1_700_000_000_000)
		latest := now
		for i := 0; i < 2000; i++ {
			now += rng.Int64N(3 * T / 1000)
			latest = max(latest, now)
			if rng.IntN(50) == 0 {
				// Back, by at most a refill from the latest time seen.
				now = max(now-rng.Int64N(burst*T/1000), latest-burst*T/1000)
			}
			cost := 1 + rng.Int64N(min(burst, 3))
			if res := k.decide(t, now, cost, 0); res.Allowed {
				admitted = append(admitted, event{now, cost})
			}
			// A token bucket never holds fewer than zero tokens (on the latest clock seen).
			for j := range p.limits {
				if ahead := tatOf(k.state, &p.limits[j]) - latest*1000; ahead > p.limits[j].toleranceUs {
					t.Fatalf("seed %d: %d µs ahead, more than the burst tolerance %d", seed, ahead, p.limits[j].toleranceUs)
				}
			}
		}
		slices.SortStableFunc(admitted, func(a, b event) int { return int(a.at - b.at) })
		sum := make([]int64, len(admitted)+1)
		for i, e := range admitted {
			sum[i+1] = sum[i] + e.cost
		}
		for i := range admitted {
			for j := i; j < len(admitted); j++ {
				span := (admitted[j].at - admitted[i].at) * 1000
				if got := sum[j+1] - sum[i]; got*T > burst*T+span {
					t.Fatalf("seed %d: %d units in %d ms, more than burst %d + %d ms / %d µs", seed, got, span/1000, burst, span/1000, T)
				}
			}
		}
		if len(admitted) < 100 {
			t.Fatalf("seed %d: only %d admissions", seed, len(admitted))
		}
	}
}

func TestMeterClockStepsBack(t *testing.T) {
	p := mustPolicy(t, TokenBucket, 1, mustBucket(t, 1, 2)) // refills in 2 s
	k := &keyState{p: p}
	k.decide(t, 10_000, 2, 0)
	// A step back within a refill: no time passed, the meter is still empty.
	if res := k.decide(t, 9_000, 1, 0); res.Allowed || res.RetryAfterMs != 2000 {
		t.Fatalf("1 s back: %+v", res)
	}
	// More than two refills back: the state is not trusted, the key starts afresh.
	if res := k.decide(t, 5_000, 1, 0); !res.Allowed || !res.Reset {
		t.Fatalf("5 s back: %+v", res)
	}
}

func TestMeterStateOfOtherLimitsIsReset(t *testing.T) {
	a := mustPolicy(t, GCRA, 1, mustLimit(t, 1, 1, 0))
	b := mustPolicy(t, GCRA, 1, mustLimit(t, 2, 1, 0))
	st, _ := a.Decide(nil, nil, 0, 1, 0)
	if _, res := b.Decide(nil, st, 0, 1, 0); !res.Allowed || !res.Reset {
		t.Fatalf("%+v", res)
	}
	sliding := mustPolicy(t, Absolute, 1, mustLimit(t, 1, 1, 100))
	if _, res := sliding.Decide(nil, st, 0, 1, 0); !res.Reset {
		t.Fatalf("a meter's state read as a sliding window: %+v", res)
	}
}

// TestMeterLease: reserved units are charged at once; unused ones come back, but never more
// than would not have refilled since the reservation.
func TestMeterLease(t *testing.T) {
	p := mustPolicy(t, TokenBucket, 1, mustBucket(t, 10, 10)) // T = 100 ms
	var st []byte
	lease := func(now int64, l Lease) Grant {
		t.Helper()
		next, g, changed := p.Lease(nil, st, now, l)
		if changed {
			st = next
		}
		return g
	}
	if g := lease(0, Lease{Want: 6}); g.Units != 6 || g.Remaining != 4 || g.AtMs != 0 {
		t.Fatalf("%+v", g)
	}
	if g := lease(0, Lease{Want: 6}); g.Units != 4 || g.Remaining != 0 {
		t.Fatalf("%+v", g)
	}
	if g := lease(50, Lease{Want: 1}); g.Units != 0 || g.RetryAfterMs != 50 {
		t.Fatalf("%+v", g)
	}
	// 300 ms later, the first proxy gives back the 6 it did not use: 3 of them would have
	// refilled anyway, so 3 come back (plus 3 refilled).
	if g := lease(300, Lease{Release: 6, ReleaseAtMs: 0}); g.Units != 0 || g.Remaining != 6 {
		t.Fatalf("%+v", g)
	}
	// The freed units are granted back whatever the caps: the proxy may have spent them.
	if g := lease(300, Lease{Release: 4, ReleaseAtMs: 0, Used: 0, Want: 4}); g.Units != 4 {
		t.Fatalf("%+v", g)
	}
}

func TestMeterDecideDoesNotAllocate(t *testing.T) {
	p := mustPolicy(t, GCRA, 1, mustLimit(t, 10, 1, 0), mustPerPeriod(t, 100, 60), mustPerPeriod(t, 1000, 3600))
	buf := make([]byte, p.StateSize())
	state, _ := p.Decide(nil, nil, 0, 1, 0)
	now := int64(0)
	if allocs := testing.AllocsPerRun(1000, func() {
		now += 7
		if _, res := p.Decide(buf, state, now, 1, 0); res.Changed {
			copy(state, buf)
		}
	}); allocs != 0 {
		t.Fatalf("%v allocations per decision", allocs)
	}
}

func FuzzDecodeMeterState(f *testing.F) {
	p := mustPolicyOpts(f, PolicyOptions{Strategy: TokenBucket, BlockMs: 2000}, mustBucket(f, 10, 5), mustBucket(f, 0.5, 20))
	seed, _ := p.Decide(nil, nil, 1000, 1, 0)
	f.Add(seed, int64(1500), int64(1))
	f.Add([]byte{}, int64(0), int64(1))
	f.Fuzz(func(t *testing.T, state []byte, now, cost int64) {
		if now < 0 || now > 1<<40 || cost > 1<<20 {
			return
		}
		fuzzOperations(t, p, state, now, cost, 0, p.validMeter)
	})
}

func BenchmarkDecideMeter(b *testing.B) {
	for _, bc := range []struct {
		name     string
		strategy Strategy
		limits   []Limit
	}{
		{"gcra/one-limit", GCRA, []Limit{mustLimit(b, 100, 1, 0)}},
		{"gcra/three-limits", GCRA, []Limit{mustLimit(b, 100, 1, 0), mustPerPeriod(b, 1000, 60), mustPerPeriod(b, 10000, 3600)}},
		{"token_bucket/one-limit", TokenBucket, []Limit{mustBucket(b, 100, 100)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := mustPolicy(b, bc.strategy, 1, bc.limits...)
			state, _ := p.Decide(nil, nil, 0, 1, 0)
			now := int64(0)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				now += 3 // ~330 requests/s against 100/s: a mix of admissions and rejections
				state, _ = p.Decide(state, state, now, 1, 0)
			}
		})
	}
}
