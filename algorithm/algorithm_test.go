package algorithm

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// keyState is one key's state, decided through the public API as a caller would.
type keyState struct {
	p     *Policy
	state []byte
}

func (k *keyState) decide(t testing.TB, now, cost int64, draw float64) Result {
	t.Helper()
	next, res := k.p.Decide(nil, k.state, now, cost, draw)
	if res.Changed {
		k.state = next
	}
	if len(next) != k.p.StateSize() {
		t.Fatalf("state size %d, want %d", len(next), k.p.StateSize())
	}
	return res
}

func mustLimit(t testing.TB, rate float64, windowS, groupMs int64) Limit {
	t.Helper()
	l, err := NewLimit(rate, windowS, groupMs)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustPolicy(t testing.TB, s Strategy, h float64, limits ...Limit) *Policy {
	t.Helper()
	p, err := NewPolicy(s, h, limits...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// step is one request of a scenario and what the decision must say.
type step struct {
	at        int64 // ms
	cost      int64
	allowed   bool
	retry     int64 // RetryAfterMs, checked when >= 0
	remaining int64 // checked when >= 0
	reason    Reason
}

func runSteps(t *testing.T, p *Policy, steps []step) {
	t.Helper()
	k := &keyState{p: p}
	for i, s := range steps {
		res := k.decide(t, s.at, max(s.cost, 1), 0.5)
		if res.Allowed != s.allowed || res.Reason != s.reason {
			t.Fatalf("step %d at %d ms: allowed=%v reason=%v, want allowed=%v reason=%v", i, s.at, res.Allowed, res.Reason, s.allowed, s.reason)
		}
		if s.retry >= 0 && res.RetryAfterMs != s.retry {
			t.Fatalf("step %d at %d ms: retry_after %d ms, want %d", i, s.at, res.RetryAfterMs, s.retry)
		}
		if s.remaining >= 0 && res.Remaining != s.remaining {
			t.Fatalf("step %d at %d ms: remaining %d, want %d", i, s.at, res.Remaining, s.remaining)
		}
	}
}

func repeat(n int, s step) []step {
	out := make([]step, n)
	for i := range out {
		out[i] = s
		if s.remaining >= 0 {
			out[i].remaining = s.remaining - int64(i)
		}
	}
	return out
}

func concat(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestAbsoluteSpecVectors(t *testing.T) {
	ok := func(at int64) step { return step{at: at, allowed: true, retry: 0, remaining: -1} }
	no := func(at, retry int64) step {
		return step{at: at, retry: retry, remaining: 0, reason: ReasonQuotaExhausted}
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "10 at t=0 pass, the 11th gets 1.0 s", steps: concat(
			repeat(10, step{at: 0, allowed: true, retry: 0, remaining: 9}),
			[]step{no(0, 1000)})},
		{name: "an 11th at t=0.5 gets 0.5 s, passes again at 1.001", steps: concat(
			repeat(10, ok(0)),
			[]step{no(500, 500), ok(1001)})},
		{name: "5 at 0 and 5 at 0.2: rejected at 0.5 with 0.5 s, exactly 5 pass at 1.001", steps: concat(
			repeat(5, ok(0)), repeat(5, ok(200)),
			[]step{no(500, 500)},
			repeat(5, ok(1001)),
			[]step{no(1001, 199)})},
	}
	p := mustPolicy(t, Absolute, 1, mustLimit(t, 10, 1, 100))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runSteps(t, p, tc.steps) })
	}
}

func TestAbsoluteEdges(t *testing.T) {
	tests := []struct {
		name   string
		limits []Limit
		steps  []step
	}{
		{name: "cost above quota is rejected for ever, without retry", limits: []Limit{mustLimit(t, 10, 1, 100)}, steps: []step{
			{at: 0, cost: 11, retry: 0, remaining: 10, reason: ReasonCostExceedsQuota},
			{at: 5000, cost: 11, retry: 0, remaining: 10, reason: ReasonCostExceedsQuota},
			{at: 5000, cost: 10, allowed: true, retry: 0, remaining: 0},
		}},
		{name: "weighted cost waits for enough buckets to expire", limits: []Limit{mustLimit(t, 10, 1, 100)}, steps: []step{
			{at: 0, cost: 3, allowed: true, retry: 0, remaining: 7},
			{at: 300, cost: 3, allowed: true, retry: 0, remaining: 4},
			{at: 600, cost: 3, allowed: true, retry: 0, remaining: 1},
			{at: 700, cost: 5, retry: 600, remaining: 1, reason: ReasonQuotaExhausted},
			{at: 1000, cost: 4, allowed: true, retry: 0, remaining: 0},
		}},
		{name: "rate 0.5/s: one every 2 s", limits: []Limit{mustLimit(t, 0.5, 2, 100)}, steps: []step{
			{at: 0, allowed: true, retry: 0, remaining: 0},
			{at: 1999, retry: 1, remaining: 0, reason: ReasonQuotaExhausted},
			{at: 2000, allowed: true, retry: 0, remaining: 0},
		}},
		{name: "fractional rate 5.5/s over 2 s gives 11", limits: []Limit{mustLimit(t, 5.5, 2, 100)}, steps: concat(
			repeat(11, step{at: 10, allowed: true, retry: 0, remaining: 10}),
			[]step{{at: 10, retry: 2000, remaining: 0, reason: ReasonQuotaExhausted}})},
		{name: "window boundary: a bucket leaves exactly one window after it started", limits: []Limit{mustLimit(t, 1, 1, 100)}, steps: []step{
			{at: 1000, allowed: true, retry: 0, remaining: 0},
			{at: 1999, retry: 1, remaining: 0, reason: ReasonQuotaExhausted},
			{at: 2000, allowed: true, retry: 0, remaining: 0},
		}},
		{name: "clock going backwards within a window counts as no time passing", limits: []Limit{mustLimit(t, 2, 1, 100)}, steps: []step{
			{at: 10000, allowed: true, retry: 0, remaining: 1},
			{at: 10500, allowed: true, retry: 0, remaining: 0},
			{at: 9600, retry: 500, remaining: 0, reason: ReasonQuotaExhausted},
			{at: 10999, retry: 1, remaining: 0, reason: ReasonQuotaExhausted},
			{at: 11000, allowed: true, retry: 0, remaining: 0},
		}},
		{name: "clock going back by more than a window starts afresh", limits: []Limit{mustLimit(t, 2, 1, 100)}, steps: []step{
			{at: 10000, allowed: true, retry: 0, remaining: 1},
			{at: 10500, allowed: true, retry: 0, remaining: 0},
			{at: 3000, allowed: true, retry: 0, remaining: 1},
		}},
		{name: "buckets age out one by one", limits: []Limit{mustLimit(t, 3, 1, 100)}, steps: []step{
			{at: 0, allowed: true, retry: 0, remaining: 2},
			{at: 100, allowed: true, retry: 0, remaining: 1},
			{at: 200, allowed: true, retry: 0, remaining: 0},
			{at: 999, retry: 1, remaining: 0, reason: ReasonQuotaExhausted},
			{at: 1000, allowed: true, retry: 0, remaining: 0},
			{at: 1050, retry: 50, remaining: 0, reason: ReasonQuotaExhausted},
			{at: 1100, allowed: true, retry: 0, remaining: 0},
			{at: 1200, allowed: true, retry: 0, remaining: 0},
		}},
		{name: "requests within group_ms share a bucket", limits: []Limit{mustLimit(t, 2, 1, 500)}, steps: []step{
			{at: 0, allowed: true, retry: 0, remaining: 1},
			{at: 499, allowed: true, retry: 0, remaining: 0},
			{at: 999, retry: 500, remaining: 0, reason: ReasonQuotaExhausted},
			{at: 1498, retry: 1, remaining: 0, reason: ReasonQuotaExhausted},
			{at: 1499, allowed: true, retry: 0, remaining: 1},
		}},
		{name: "several limits: rejected by the per-minute one, counted in none", limits: []Limit{mustLimit(t, 10, 1, 100), mustPerPeriod(t, 3, 60)}, steps: []step{
			{at: 0, allowed: true, retry: 0, remaining: 2},
			{at: 0, allowed: true, retry: 0, remaining: 1},
			{at: 0, allowed: true, retry: 0, remaining: 0},
			{at: 0, retry: 60000, remaining: 0, reason: ReasonQuotaExhausted},
			{at: 59999, retry: 1, remaining: 0, reason: ReasonQuotaExhausted},
			{at: 60000, allowed: true, retry: 0, remaining: 2},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runSteps(t, mustPolicy(t, Absolute, 1, tc.limits...), tc.steps) })
	}
}

func mustPerPeriod(t testing.TB, n, periodS int64) Limit {
	t.Helper()
	l, err := PerPeriod(n, periodS, 0)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestSeveralLimitsAreAtomic(t *testing.T) {
	p := mustPolicy(t, Absolute, 1, mustLimit(t, 5, 1, 100), mustPerPeriod(t, 100, 60))
	k := &keyState{p: p}
	for i := 0; i < 20; i++ {
		k.decide(t, 0, 1, 0)
	}
	// 5 admitted: the per-second limit rejected the other 15, which the per-minute limit must
	// not have counted either.
	st := state{p: p, b: k.state}
	if a, b := st.ring(0).sumA(), st.ring(1).sumA(); a != 5 || b != 5 {
		t.Fatalf("counted %d and %d, want 5 in both", a, b)
	}
}

func TestQuotaIsExact(t *testing.T) {
	tests := []struct {
		name    string
		limit   func() (Limit, error)
		quota   int64
		buckets int
	}{
		{name: "100 per 60 s given as a rate", limit: func() (Limit, error) { return NewLimit(100.0/60, 60, 0) }, quota: 100, buckets: 600},
		{name: "100/m", limit: func() (Limit, error) { return PerPeriod(100, 60, 0) }, quota: 100, buckets: 600},
		{name: "0.5/s over 10 s", limit: func() (Limit, error) { return NewLimit(0.5, 10, 0) }, quota: 5, buckets: 100},
		{name: "1000/h groups coarsely", limit: func() (Limit, error) { return PerPeriod(1000, 3600, 0) }, quota: 1000, buckets: 1000},
		{name: "0.1 per 3 s", limit: func() (Limit, error) { return NewLimit(0.1, 30, 0) }, quota: 3, buckets: 300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := tc.limit()
			if err != nil {
				t.Fatal(err)
			}
			if l.Quota != tc.quota || l.Buckets() != tc.buckets {
				t.Fatalf("quota %d buckets %d, want %d and %d", l.Quota, l.Buckets(), tc.quota, tc.buckets)
			}
		})
	}
}

func TestInvalidLimitsAndPolicies(t *testing.T) {
	ok := mustLimit(t, 1, 1, 100)
	tests := []struct {
		name string
		err  func() error
		want string
	}{
		{name: "rate 0", err: func() error { _, err := NewLimit(0, 1, 0); return err }, want: "must be a finite number > 0"},
		{name: "NaN rate", err: func() error { _, err := NewLimit(math.NaN(), 1, 0); return err }, want: "finite"},
		{name: "quota 0", err: func() error { _, err := NewLimit(0.5, 1, 0); return err }, want: "quota of 0"},
		{name: "window 0", err: func() error { _, err := NewLimit(1, 0, 0); return err }, want: "window 0 s"},
		{name: "too many buckets", err: func() error { _, err := NewLimit(1, 3600, 100); return err }, want: "raise group_ms to at least 3600"},
		{name: "group longer than window", err: func() error { _, err := NewLimit(1, 1, 2000); return err }, want: "longer than the window"},
		{name: "no limits", err: func() error { _, err := NewPolicy(Absolute, 1); return err }, want: "between 1 and 16 limits"},
		{name: "hard factor with absolute", err: func() error { _, err := NewPolicy(Absolute, 2, ok); return err }, want: "suppressed strategy only"},
		{name: "hard factor below 1", err: func() error { _, err := NewPolicy(Suppressed, 0.5, ok); return err }, want: "between 1 and 1000"},
		{name: "hand-made invalid limit", err: func() error {
			_, err := NewPolicy(Absolute, 1, Limit{Quota: 1, WindowMs: 1500, GroupMs: 100, Rate: 1})
			return err
		}, want: "limit 0: invalid limit: window 1500 ms"},
		{name: "unknown strategy", err: func() error { _, err := NewPolicy(Strategy(9), 1, ok); return err }, want: "unknown strategy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestStateOfOtherLimitsIsReset(t *testing.T) {
	a := mustPolicy(t, Absolute, 1, mustLimit(t, 2, 1, 100))
	b := mustPolicy(t, Absolute, 1, mustLimit(t, 3, 1, 100)) // same size, other quota
	if a.StateSize() != b.StateSize() || a.Fingerprint() == b.Fingerprint() {
		t.Fatal("test needs policies of equal size and different fingerprints")
	}
	st, _ := a.Decide(nil, nil, 0, 2, 0)
	_, res := b.Decide(nil, st, 0, 1, 0)
	if !res.Reset || !res.Allowed || res.Remaining != 2 {
		t.Fatalf("state of other limits was not reset: %+v", res)
	}
}

func TestSuppressedSpecVector(t *testing.T) {
	// rate 10/s, window 10 s, h 2, steady 14 attempts/s.
	p := mustPolicy(t, Suppressed, 2, mustLimit(t, 10, 10, 100))
	k := &keyState{p: p}
	rng := rand.New(rand.NewPCG(1, 2))
	var admitted []int64 // admission times
	var sfAfterFill []float64
	for i := int64(0); i < 14*60; i++ {
		now := i * 1000 / 14
		res := k.decide(t, now, 1, rng.Float64())
		if res.Allowed {
			admitted = append(admitted, now)
		}
		if now > 20000 && res.SuppressionFactor > 0 {
			sfAfterFill = append(sfAfterFill, res.SuppressionFactor)
		}
	}
	assertWindowCap(t, admitted, 10000, 200)
	var sum float64
	for _, sf := range sfAfterFill {
		sum += sf
	}
	mean := sum / float64(len(sfAfterFill))
	if math.Abs(mean-(1-10.0/14)) > 0.03 {
		t.Fatalf("mean suppression factor %.3f, want about %.3f", mean, 1-10.0/14)
	}
	// After the first window, about 10/s are accepted.
	var late int
	for _, at := range admitted {
		if at >= 10000 {
			late++
		}
	}
	if rate := float64(late) / 50; math.Abs(rate-10)/10 > 0.05 {
		t.Fatalf("accepted %.2f/s after the window filled, want 10/s within 5%%", rate)
	}
}

// assertWindowCap checks that no window of windowMs holds more than cap admissions.
func assertWindowCap(t *testing.T, admitted []int64, windowMs int64, cap int) {
	t.Helper()
	lo := 0
	for hi := range admitted {
		for admitted[hi]-admitted[lo] >= windowMs {
			lo++
		}
		if n := hi - lo + 1; n > cap {
			t.Fatalf("%d admitted in the window starting at %d ms, cap %d", n, admitted[lo], cap)
		}
	}
}

func TestSuppressedHardCapAndConvergence(t *testing.T) {
	for _, overload := range []float64{2, 5} {
		for _, seed := range []uint64{1, 2, 3} {
			rng := rand.New(rand.NewPCG(seed, 99))
			const rate = 20.0
			p := mustPolicy(t, Suppressed, 1.5, mustLimit(t, rate, 10, 100))
			k := &keyState{p: p}
			var admitted []int64
			// The first windows admit up to H while the perceived rate builds up; the rate must
			// then converge: it is measured over the 60 s after a warm-up of two windows.
			var steady int
			attempts := int64(rate * overload * 80)
			for i := int64(0); i < attempts; i++ {
				// Evenly spread arrivals with jitter, in order.
				now := i*80000/attempts + rng.Int64N(5)
				if res := k.decide(t, now, 1, rng.Float64()); res.Allowed {
					admitted = append(admitted, now)
					if now >= 20000 {
						steady++
					}
				}
			}
			assertWindowCap(t, admitted, 10000, 300) // H = floor(200 × 1.5)
			got := float64(steady) / 60
			if math.Abs(got-rate)/rate > 0.05 {
				t.Errorf("overload %vx seed %d: admitted %.2f/s over 60 s, want %v within 5%%", overload, seed, got, rate)
			}
		}
	}
}

func TestSuppressedBelowQuotaNeverSheds(t *testing.T) {
	p := mustPolicy(t, Suppressed, 2, mustLimit(t, 10, 1, 100))
	k := &keyState{p: p}
	for i := int64(0); i < 100; i++ {
		res := k.decide(t, i*100, 1, 0) // draw 0 sheds whenever sf > 0
		if !res.Allowed || res.SuppressionFactor != 0 {
			t.Fatalf("request %d at 10/s was not admitted: %+v", i, res)
		}
	}
}

func TestAbsoluteNeverExceedsQuotaProperty(t *testing.T) {
	for seed := uint64(0); seed < 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		// Only valid limits are drawn, so that every seed runs: a quota of at least 1 (rate at
		// least 1/window) and at most MaxBuckets buckets (group no finer than window/MaxBuckets).
		windowS := 1 + rng.Int64N(5)
		rate := 1/float64(windowS) + rng.Float64()*50
		group := []int64{1, 10, 100, 250, 1000}[rng.IntN(5)]
		group = min(max(group, (windowS*1000+MaxBuckets-1)/MaxBuckets), windowS*1000)
		l, err := NewLimit(rate, windowS, group)
		if err != nil {
			t.Fatalf("seed %d: the generator drew an invalid limit: %v", seed, err)
		}
		k := &keyState{p: mustPolicy(t, Absolute, 1, l)}
		type adm struct{ at, cost int64 }
		var got []adm
		now := int64(0)
		for i := 0; i < 5000; i++ {
			now += rng.Int64N(3 * 1000 / int64(rate+1))
			if rng.IntN(50) == 0 {
				now -= rng.Int64N(500) // the clock may step back
			}
			cost := 1 + rng.Int64N(3)
			if res := k.decide(t, now, cost, 0); res.Allowed {
				got = append(got, adm{max(now, lastAt(got)), cost})
			}
		}
		lo, sum := 0, int64(0)
		for hi := range got {
			sum += got[hi].cost
			for got[hi].at-got[lo].at >= l.WindowMs {
				sum -= got[lo].cost
				lo++
			}
			if sum > l.Quota {
				t.Fatalf("seed %d: %d admitted in a window, quota %d (%+v)", seed, sum, l.Quota, l)
			}
		}
	}
}

func lastAt[T interface{ ~struct{ at, cost int64 } }](s []T) int64 {
	if len(s) == 0 {
		return math.MinInt64
	}
	return struct{ at, cost int64 }(s[len(s)-1]).at
}

func TestDecideDoesNotAllocate(t *testing.T) {
	p := mustPolicy(t, Suppressed, 2, mustLimit(t, 10, 1, 100), mustPerPeriod(t, 100, 60), mustPerPeriod(t, 1000, 3600))
	buf := make([]byte, p.StateSize())
	state, _ := p.Decide(nil, nil, 0, 1, 0.5)
	now := int64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		now += 7
		_, res := p.Decide(buf, state, now, 1, 0.5)
		if res.Changed {
			copy(state, buf)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per decision", allocs)
	}
}

func TestRebaseKeepsCounts(t *testing.T) {
	p := mustPolicy(t, Absolute, 1, mustPerPeriod(t, 3, 10))
	k := &keyState{p: p}
	start := int64(1) << 40
	k.decide(t, start, 1, 0)
	far := start + rebaseAfterMs + 5000
	for _, at := range []int64{far, far + 1000, far + 2000} {
		if res := k.decide(t, at, 1, 0); !res.Allowed {
			t.Fatalf("at %d: %+v", at-far, res)
		}
	}
	if base := (state{p: p, b: k.state}).base(); base == start {
		t.Fatal("state was not rebased")
	}
	if res := k.decide(t, far+3000, 1, 0); res.Allowed || res.RetryAfterMs != 7000 {
		t.Fatalf("after a rebase: %+v, want a rejection with 7 s to wait", res)
	}
	if res := k.decide(t, far+10000, 1, 0); !res.Allowed || res.Remaining != 0 {
		t.Fatalf("after the first bucket left: %+v", res)
	}
}

func FuzzDecodeState(f *testing.F) {
	p := mustPolicyOpts(f, PolicyOptions{Strategy: Suppressed, HardLimitFactor: 2, BlockMs: 3000}, mustLimit(f, 10, 1, 100), mustPerPeriod(f, 5, 2))
	seed, _ := p.Decide(nil, nil, 1000, 1, 0.1)
	f.Add(seed, int64(1500), int64(1), 0.3)
	f.Add([]byte{}, int64(0), int64(1), 0.0)
	f.Fuzz(func(t *testing.T, state []byte, now, cost int64, draw float64) {
		if now < 0 || now > 1<<50 || cost > 1<<20 {
			return
		}
		fuzzOperations(t, p, state, now, cost, draw, p.valid)
	})
}

// fuzzOperations runs every operation on state, whatever it holds: each writes a valid state and
// answers within bounds.
func fuzzOperations(t *testing.T, p *Policy, state []byte, now, cost int64, draw float64, valid func([]byte) bool) {
	t.Helper()
	check := func(what string, next []byte, res Result) {
		t.Helper()
		if len(next) != p.StateSize() || !valid(next) {
			t.Fatalf("%s wrote an invalid state (%d bytes)", what, len(next))
		}
		if res.Remaining < 0 || res.RetryAfterMs < 0 || res.ResetAfterMs < 0 || res.Remaining > res.Limit {
			t.Fatalf("%s: result out of bounds: %+v", what, res)
		}
	}
	next, res := p.Decide(nil, state, now, cost, draw)
	check("Decide", next, res)
	next, res = p.Record(nil, state, now, cost)
	check("Record", next, res)
	next, res = p.Block(nil, state, now, cost)
	check("Block", next, res)
	res = p.Check(state, now, cost)
	check("Check", next, res)
	if next, changed := p.Refund(nil, state, now, now-cost, cost); changed {
		check("Refund", next, Result{})
	}
	next, g, _ := p.Lease(nil, state, now, Lease{Release: cost, ReleaseAtMs: now - 10, Used: cost / 2, Denied: 1, Rejected: 1, Want: cost})
	check("Lease", next, Result{Limit: g.Limit, Remaining: g.Remaining, RetryAfterMs: g.RetryAfterMs, ResetAfterMs: g.ResetAfterMs})
}

func BenchmarkDecide(b *testing.B) {
	one := []Limit{mustLimit(b, 100, 1, 100)}
	three := []Limit{mustLimit(b, 100, 1, 100), mustPerPeriod(b, 1000, 60), mustPerPeriod(b, 10000, 3600)}
	for _, bc := range []struct {
		name     string
		strategy Strategy
		h        float64
		limits   []Limit
	}{
		{"absolute/one-limit", Absolute, 1, one},
		{"absolute/three-limits", Absolute, 1, three},
		{"suppressed/one-limit", Suppressed, 2, one},
		{"suppressed/three-limits", Suppressed, 2, three},
	} {
		b.Run(bc.name, func(b *testing.B) {
			// In place, as the plugin decides in the buffer the host returned from shared data.
			p := mustPolicy(b, bc.strategy, bc.h, bc.limits...)
			state, _ := p.Decide(nil, nil, 0, 1, 0.5)
			now := int64(0)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				now += 3 // ~330 requests/s against 100/s: a mix of admissions and rejections
				state, _ = p.Decide(state, state, now, 1, 0.5)
			}
		})
		b.Run(bc.name+"/copying", func(b *testing.B) {
			// Into a second buffer: the cost of copying the state is included.
			p := mustPolicy(b, bc.strategy, bc.h, bc.limits...)
			state, _ := p.Decide(nil, nil, 0, 1, 0.5)
			buf := make([]byte, p.StateSize())
			now := int64(0)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				now += 3
				next, res := p.Decide(buf, state, now, 1, 0.5)
				if res.Changed {
					state, buf = next, state
				}
			}
		})
	}
}
