package algorithm

import (
	"math"
	"testing"
)

// Boundary vectors: each case sits exactly on a threshold SPEC.md or FORMAT.md defines (a weighted
// cost, a tie between limits, the soft quota, the bounds of a trusted state, the rebase point),
// where an off-by-one in the implementation would change the answer.

// TestBlockWithAWeightedCost: Block checks the request's whole cost, as Check does, and starts the
// block only when that cost does not fit.
func TestBlockWithAWeightedCost(t *testing.T) {
	p := mustPolicyOpts(t, PolicyOptions{Strategy: Absolute, BlockMs: 10_000}, mustPerPeriod(t, 5, 60))
	runOps(t, p, []op{
		{at: 0, do: "decide", cost: 3, allowed: true, retry: 0, remaining: 2},
		{at: 1000, do: "block", cost: 2, allowed: true, retry: 0, remaining: 2},
		// 3 more do not fit: rejected until the first 3 leave at 60 s, and the block starts.
		{at: 1000, do: "block", cost: 3, reason: ReasonQuotaExhausted, retry: 59_000, remaining: 0},
		// Blocked: the rest of the block (SPEC.md, "Blocks").
		{at: 2000, do: "check", cost: 1, reason: ReasonBlocked, retry: 9000, remaining: 0},
	})
}

// TestSuppressedDeciderAmongLimits: a suppressed rejection by several limits is decided as an
// absolute one: the longest Retry-After decides (the first of equals), a cost that can never fit
// wins with no Retry-After, and a shed names the limit with the largest suppression factor.
func TestSuppressedDeciderAmongLimits(t *testing.T) {
	per := func(n, periodS, groupMs int64) Limit { return mustLimitPeriod(t, n, periodS, groupMs) }
	tests := []struct {
		name   string
		h      float64
		limits []Limit
		reqs   []sreq // the last one is checked
		// want
		reason  Reason
		decider int
		retry   int64
		sf      float64
	}{
		{name: "hard limits: the longer wait decides", h: 1, limits: []Limit{per(2, 10, 0), per(2, 20, 0)},
			reqs: []sreq{{0, 1, 0}, {0, 1, 0}, {1000, 1, 0}}, reason: ReasonHardLimit, decider: 1, retry: 19_000, sf: 1},
		{name: "hard limits: the longer wait first", h: 1, limits: []Limit{per(2, 20, 0), per(2, 10, 0)},
			reqs: []sreq{{0, 1, 0}, {0, 1, 0}, {1000, 1, 0}}, reason: ReasonHardLimit, decider: 0, retry: 19_000, sf: 1},
		{name: "hard limits: equal waits, the first decides", h: 1, limits: []Limit{per(2, 10, 0), per(2, 10, 1000)},
			reqs: []sreq{{0, 1, 0}, {0, 1, 0}, {1000, 1, 0}}, reason: ReasonHardLimit, decider: 0, retry: 9000, sf: 1},
		{name: "a cost above the second's quota wins over the first's wait", h: 1, limits: []Limit{per(10, 10, 0), per(3, 10, 0)},
			reqs: []sreq{{0, 3, 0}, {1000, 8, 0}}, reason: ReasonCostExceedsQuota, decider: 1, retry: 0, sf: 1},
		{name: "a cost above the first's quota is not overridden", h: 1, limits: []Limit{per(3, 10, 0), per(10, 10, 0)},
			reqs: []sreq{{0, 3, 0}, {1000, 8, 0}}, reason: ReasonCostExceedsQuota, decider: 0, retry: 0, sf: 1},
		{name: "a cost above the hard quota, h 2", h: 2, limits: []Limit{per(5, 10, 0), per(2, 10, 0)},
			reqs: []sreq{{0, 1, 0}, {1000, 5, 0}}, reason: ReasonCostExceedsQuota, decider: 1, retry: 0, sf: 1},
		// 10 accepted at t0 in both limits, then one shed with draw 0: perceived 10/s (the last
		// second) against 10 per minute, 10 per 30 s.
		{name: "shed: equal factors, the first decides", h: 2, limits: []Limit{per(10, 60, 0), per(10, 60, 1000)},
			reqs: append(tenAt(0), sreq{0, 1, 0}), reason: ReasonSuppressed, decider: 0, retry: 60_000, sf: 1 - (10.0/60)/10},
		{name: "shed: the larger factor decides", h: 2, limits: []Limit{per(10, 30, 0), per(10, 60, 0)},
			reqs: append(tenAt(0), sreq{0, 1, 0}), reason: ReasonSuppressed, decider: 1, retry: 60_000, sf: 1 - (10.0/60)/10},
		{name: "shed: the larger factor first", h: 2, limits: []Limit{per(10, 60, 0), per(10, 30, 0)},
			reqs: append(tenAt(0), sreq{0, 1, 0}), reason: ReasonSuppressed, decider: 0, retry: 60_000, sf: 1 - (10.0/60)/10},
		{name: "a hard limit wins over another's shedding", h: 2, limits: []Limit{per(10, 60, 0), per(5, 60, 0)},
			reqs: append(tenAt(0), sreq{0, 1, 0}), reason: ReasonHardLimit, decider: 1, retry: 60_000, sf: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPolicy(t, Suppressed, tc.h, tc.limits...)
			k := &keyState{p: p}
			var res Result
			for i, r := range tc.reqs {
				res = k.decide(t, r.at, r.cost, r.draw)
				if i < len(tc.reqs)-1 && !res.Allowed {
					t.Fatalf("request %d: %+v, want it accepted", i, res)
				}
			}
			if res.Allowed || res.Reason != tc.reason || res.Decider != tc.decider || res.RetryAfterMs != tc.retry ||
				math.Abs(res.SuppressionFactor-tc.sf) > 1e-9 {
				t.Fatalf("%+v\nwant reason %v, decider %d, retry %d ms, suppression factor %v", res, tc.reason, tc.decider, tc.retry, tc.sf)
			}
		})
	}
}

// sreq is a request of a suppressed scenario.
type sreq struct {
	at, cost int64
	draw     float64
}

// tenAt is 10 requests of cost 1 at ms that no suppression factor sheds (draw just below 1).
func tenAt(ms int64) []sreq {
	s := make([]sreq, 10)
	for i := range s {
		s[i] = sreq{ms, 1, 0.9999}
	}
	return s
}

// TestLeaseAtTheSoftQuota: a suppressed lease reserves up to the soft quota while the key is
// below it, up to the hard quota once the soft quota is used, and reports the suppression factor
// only above the soft quota. Used units are counted now when UsedAtMs is 0; a lease that reports
// nothing counts nothing.
func TestLeaseAtTheSoftQuota(t *testing.T) {
	const t0 = int64(1_000_000)
	type step struct {
		name            string
		at              int64
		l               Lease
		units, reset    int64
		sf              float64
		checkResetAfter bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "UsedAtMs 0 counts the units now", steps: []step{
			{name: "an empty key: nothing counted, nothing to reset", at: t0, l: Lease{}, reset: 0, checkResetAfter: true},
			{name: "used 1 half a window later", at: t0 + 500, l: Lease{Used: 1}, reset: 1000, checkResetAfter: true},
		}},
		{name: "one unit below the soft quota", steps: []step{
			{name: "9 of 10", at: t0, l: Lease{Want: 9}, units: 9},
			{name: "the last unit of the soft quota only", at: t0 + 100, l: Lease{Release: 9, ReleaseAtMs: t0, Used: 9, Want: 5}, units: 1},
			{name: "above it, up to the hard quota less one", at: t0 + 200, l: Lease{Release: 1, ReleaseAtMs: t0 + 100, Used: 1, Want: 9},
				units: 9, sf: 1 - 10.0/19},
			{name: "one unit below the hard quota: the factor without a reservation", at: t0 + 300,
				l: Lease{Release: 9, ReleaseAtMs: t0 + 200, Used: 9}, sf: 1 - 10.0/19},
		}},
		{name: "denials without units above the soft quota", steps: []step{
			{name: "exactly the soft quota reserved: no factor", at: t0, l: Lease{Denied: 5, Want: 10}, units: 10},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPolicy(t, Suppressed, 2, mustLimitPeriod(t, 10, 1, 100))
			var st []byte
			for _, s := range tc.steps {
				next, g, _ := p.Lease(nil, st, s.at, s.l)
				if g.Units != s.units || math.Abs(g.SuppressionFactor-s.sf) > 1e-9 || (s.checkResetAfter && g.ResetAfterMs != s.reset) {
					t.Fatalf("%s: grant %+v; want units %d, suppression factor %v, reset after %d ms", s.name, g, s.units, s.sf, s.reset)
				}
				st = next
			}
		})
	}
}

// TestTrustedStateBounds hands decisions states on either side of each bound FORMAT.md and
// SPEC.md set on a state: a state at most a window ahead of now, last - base within 2 × 2^30 ms,
// ring indexes within the ring (a full ring is valid), and a block end at most two blocks ahead.
// An untrusted state starts afresh (Reset); an untrusted block blocks nothing.
func TestTrustedStateBounds(t *testing.T) {
	lim := mustPerPeriod(t, 3, 10) // 100 buckets of 100 ms
	p := mustPolicyOpts(t, PolicyOptions{Strategy: Absolute, BlockMs: 3000}, lim)
	const t0 = int64(1) << 40
	good, _ := p.Decide(nil, nil, t0, 1, 0)
	limOff := headerSize
	edit := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	u64 := func(off int, v int64) func([]byte) { return func(b []byte) { le.PutUint64(b[off:], uint64(v)) } }
	u16 := func(off, v int) func([]byte) { return func(b []byte) { le.PutUint16(b[off:], uint16(v)) } }
	buckets := lim.Buckets()
	tests := []struct {
		name  string
		state []byte
		now   int64
		reset bool
	}{
		{name: "written a window ahead", state: good, now: t0 - 10_000},
		{name: "written more than a window ahead", state: good, now: t0 - 10_001, reset: true},
		{name: "last 2^31 ms after base", state: edit(u64(8, t0-2*rebaseAfterMs)), now: t0},
		{name: "last more than 2^31 ms after base", state: edit(u64(8, t0-2*rebaseAfterMs-1)), now: t0, reset: true},
		{name: "last before base", state: edit(u64(8, t0+1)), now: t0, reset: true},
		{name: "first is the last bucket", state: edit(u16(limOff, buckets-1)), now: t0},
		{name: "first past the ring", state: edit(u16(limOff, buckets)), now: t0, reset: true},
		{name: "a full ring", state: edit(u16(limOff+2, buckets)), now: t0},
		{name: "more buckets than the ring", state: edit(u16(limOff+2, buckets+1)), now: t0, reset: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if res := p.Check(tc.state, tc.now, 1); res.Reset != tc.reset {
				t.Fatalf("Check: %+v, want Reset %v", res, tc.reset)
			}
			if _, res := p.Decide(nil, tc.state, tc.now, 1, 0); res.Reset != tc.reset {
				t.Fatalf("Decide: %+v, want Reset %v", res, tc.reset)
			}
		})
	}
	blockEnd := len(good) - blockSize
	for _, tc := range []struct {
		name    string
		end     int64
		blocked bool
	}{
		{name: "a block ending two blocks ahead", end: t0 + 6000, blocked: true},
		{name: "a block ending further", end: t0 + 6001},
		{name: "a block ending now", end: t0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := p.Check(edit(u64(blockEnd, tc.end)), t0, 1)
			if blocked := res.Reason == ReasonBlocked; blocked != tc.blocked || (tc.blocked && res.RetryAfterMs != tc.end-t0) {
				t.Fatalf("%+v, want blocked %v", res, tc.blocked)
			}
		})
	}
}

// TestRecordSaturatesItsCounts: Record counts beyond the quota as far as 2^32 - 1 units, and a
// key recorded that far has nothing remaining.
func TestRecordSaturatesItsCounts(t *testing.T) {
	p := mustPolicy(t, Absolute, 1, mustPerPeriod(t, 5, 10))
	st, res := p.Record(nil, nil, 0, 1<<33)
	if res.Allowed || res.Remaining != 0 {
		t.Fatalf("Record: %+v, want a rejection with nothing remaining", res)
	}
	if res := p.Check(st, 1000, 1); res.Allowed || res.Remaining != 0 || res.RetryAfterMs != 9000 {
		t.Fatalf("Check after: %+v, want a rejection for 9 s with nothing remaining", res)
	}
	if got := (state{p: p, b: st}).ring(0).sumA(); got != 1<<32-1 {
		t.Fatalf("counted %d, want %d", got, int64(1<<32-1))
	}
}

// TestRebaseThreshold: base moves up once now - base exceeds 2^30 ms (not at exactly 2^30), to
// now minus the longest window, shifting every live bucket so that it keeps its time; with a
// window longer than 2^30 ms it cannot move up and stays.
func TestRebaseThreshold(t *testing.T) {
	const t0 = int64(1) << 40
	baseOf := func(p *Policy, b []byte) int64 { return (state{p: p, b: b}).base() }

	p := mustPolicy(t, Absolute, 1, mustPerPeriod(t, 3, 10))
	k := &keyState{p: p}
	k.decide(t, t0, 1, 0)
	if res := k.decide(t, t0+rebaseAfterMs, 1, 0); !res.Allowed || baseOf(p, k.state) != t0 {
		t.Fatalf("at exactly 2^30 ms: %+v, base moved by %d", res, baseOf(p, k.state)-t0)
	}
	// A bucket 5 s before the threshold is live when base moves.
	k = &keyState{p: p}
	k.decide(t, t0, 1, 0)
	k.decide(t, t0+rebaseAfterMs-5000, 1, 0)
	now := t0 + rebaseAfterMs + 1
	res := k.decide(t, now, 1, 0)
	if got := baseOf(p, k.state); got != now-10_000 {
		t.Fatalf("base %d ms before now, want 10000", now-got)
	}
	// The bucket of now-5001 leaves at now+4999.
	if !res.Allowed || res.Remaining != 1 || res.ResetAfterMs != 4999 {
		t.Fatalf("after the rebase: %+v, want 1 remaining, reset after 4999 ms", res)
	}
	if res := k.decide(t, now+4998, 1, 0); !res.Allowed || res.Remaining != 0 {
		t.Fatalf("before the bucket left: %+v", res)
	}
	if res := k.decide(t, now+4999, 1, 0); !res.Allowed || res.Remaining != 0 || res.ResetAfterMs != 5001 {
		t.Fatalf("once the bucket left: %+v, want 0 remaining, reset after 5001 ms", res)
	}

	// A full ring (a bucket every 100 ms for the last 10 s) moves as a whole.
	k = &keyState{p: mustPolicy(t, Absolute, 1, mustPerPeriod(t, 1000, 10))}
	k.decide(t, t0, 1, 0)
	for i := int64(0); i < 100; i++ {
		k.decide(t, t0+rebaseAfterMs-9900+i*100, 1, 0)
	}
	if res := k.decide(t, now, 1, 0); !res.Allowed || res.Remaining != 899 || res.ResetAfterMs != 99 {
		t.Fatalf("full ring after the rebase: %+v, want 899 remaining, reset after 99 ms", res)
	}

	long := mustPolicy(t, Absolute, 1, mustPerPeriod(t, 3, 20*86400)) // 20 days > 2^30 ms
	k = &keyState{p: long}
	k.decide(t, t0, 1, 0)
	if res := k.decide(t, t0+rebaseAfterMs+1, 1, 0); !res.Allowed || res.Remaining != 1 || baseOf(long, k.state) != t0 {
		t.Fatalf("20-day window: %+v, base moved by %d", res, baseOf(long, k.state)-t0)
	}
}

// TestCheckReadsTheLiveBuckets: Check answers from the state as it is, skipping the buckets that
// left the window since it was written (SPEC.md: ResetAfterMs is the time until the oldest counted
// bucket leaves, RetryAfterMs until the cost fits), across the end of the ring.
func TestCheckReadsTheLiveBuckets(t *testing.T) {
	p := mustPolicy(t, Absolute, 1, mustLimitPeriod(t, 10, 1, 100)) // 10 buckets of 100 ms
	k := &keyState{p: p}
	// A request every 100 ms from 0 to 1800 ms: at 1800 the ring holds 900..1800, the oldest in
	// its last slot.
	for at := int64(0); at <= 1800; at += 100 {
		if res := k.decide(t, at, 1, 0); !res.Allowed {
			t.Fatalf("at %d: %+v", at, res)
		}
	}
	tests := []struct {
		name                       string
		at, cost                   int64
		allowed                    bool
		remaining, retry, resetAft int64
	}{
		{name: "nothing left yet", at: 1800, cost: 1, remaining: 0, retry: 100, resetAft: 100},
		{name: "900 left: 1000 is the oldest", at: 1900, cost: 1, allowed: true, remaining: 1, resetAft: 100},
		{name: "two units wait for 1000 to leave", at: 1900, cost: 2, remaining: 1, retry: 100, resetAft: 100},
		{name: "three for 1100", at: 1950, cost: 3, remaining: 1, retry: 150, resetAft: 50},
	}
	for _, tc := range tests {
		res := p.Check(k.state, tc.at, tc.cost)
		if res.Allowed != tc.allowed || res.Remaining != tc.remaining || res.RetryAfterMs != tc.retry || res.ResetAfterMs != tc.resetAft {
			t.Fatalf("%s: %+v\nwant allowed %v, remaining %d, retry %d ms, reset after %d ms", tc.name, res, tc.allowed, tc.remaining, tc.retry, tc.resetAft)
		}
	}
}

// TestNothingCountedResetsNow: a key with nothing counted has ResetAfterMs 0, whatever rejected
// the request.
func TestNothingCountedResetsNow(t *testing.T) {
	p := mustPolicy(t, Absolute, 1, mustPerPeriod(t, 3, 10))
	_, res := p.Decide(nil, nil, 5000, 4, 0)
	if res.Allowed || res.Reason != ReasonCostExceedsQuota || res.Remaining != 3 || res.ResetAfterMs != 0 {
		t.Fatalf("%+v, want a cost above the quota, 3 remaining, reset after 0", res)
	}
}

// TestResetAfterTheOldestLiveBucket: ResetAfterMs is the time until the oldest bucket still
// counted leaves its window, the older ones gone.
func TestResetAfterTheOldestLiveBucket(t *testing.T) {
	p := mustPolicy(t, Absolute, 1, mustPerPeriod(t, 3, 10))
	k := &keyState{p: p}
	for _, s := range []struct{ at, remaining, resetAfter int64 }{
		{0, 2, 10_000},
		{5000, 1, 5000},
		{12_000, 1, 3000}, // 0 left at 10 s: 5000 is the oldest
		{14_500, 0, 500},
	} {
		if res := k.decide(t, s.at, 1, 0); !res.Allowed || res.Remaining != s.remaining || res.ResetAfterMs != s.resetAfter {
			t.Fatalf("at %d ms: %+v, want %d remaining, reset after %d ms", s.at, res, s.remaining, s.resetAfter)
		}
	}
}

// TestLeaseUsedUnitsBuckets: Used units go into the newest bucket unless one can start at UsedAtMs
// (group_ms or more after the newest bucket's start); a bucket's end never moves back, and a full
// ring takes them into its newest bucket (FORMAT.md). What each leaves behind is seen in
// ResetAfterMs and in what remains once the older buckets have left.
func TestLeaseUsedUnitsBuckets(t *testing.T) {
	const t0 = int64(1_000_000)
	type step struct {
		do                    string // decide, lease, check
		at                    int64
		l                     Lease
		remaining, resetAfter int64 // resetAfter checked when >= 0
	}
	// Requests at t0, t0+99, then every 100 ms to t0+900 fill the ring of a quota of 100 until
	// t0+1099.
	fill := []step{{do: "decide", at: t0, remaining: 99, resetAfter: 1000}, {do: "decide", at: t0 + 99, remaining: 98, resetAfter: 1000}}
	for i := int64(1); i < 10; i++ {
		fill = append(fill, step{do: "decide", at: t0 + i*100, remaining: 98 - i, resetAfter: 1099 - i*100})
	}
	tests := []struct {
		name  string
		quota int64
		steps []step
	}{
		{name: "exactly group_ms after the newest start: a new bucket", steps: []step{
			{do: "decide", at: t0, remaining: 9, resetAfter: 1000},
			{do: "lease", at: t0 + 150, l: Lease{Used: 3, UsedAtMs: t0 + 100}, remaining: 6, resetAfter: 850},
			{do: "check", at: t0 + 1000, remaining: 7, resetAfter: 100},
		}},
		{name: "less than group_ms after the newest start: into it", steps: []step{
			{do: "decide", at: t0, remaining: 9, resetAfter: 1000},
			{do: "decide", at: t0 + 500, remaining: 8, resetAfter: 500},
			{do: "lease", at: t0 + 600, l: Lease{Used: 3, UsedAtMs: t0 + 550}, remaining: 5, resetAfter: 400},
			// 500 and 550 share a bucket that leaves at 1550.
			{do: "check", at: t0 + 1500, remaining: 6, resetAfter: 50},
			{do: "check", at: t0 + 1550, remaining: 10, resetAfter: 0},
		}},
		{name: "before the newest end: the end stays", steps: []step{
			{do: "decide", at: t0, remaining: 9, resetAfter: 1000},
			{do: "decide", at: t0 + 50, remaining: 8, resetAfter: 1000},
			{do: "lease", at: t0 + 60, l: Lease{Used: 2, UsedAtMs: t0 + 20}, remaining: 6, resetAfter: 990},
		}},
		{name: "a full ring: into the newest bucket", quota: 100, steps: append(fill,
			step{do: "lease", at: t0 + 1000, l: Lease{Used: 1}, remaining: 88, resetAfter: 99},
			step{do: "check", at: t0 + 1010, remaining: 88, resetAfter: 89},
			// Only the newest bucket is left: the request of 900 and the unit of 1000.
			step{do: "check", at: t0 + 1999, remaining: 98, resetAfter: 1},
		)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPolicy(t, Absolute, 1, mustLimitPeriod(t, max(tc.quota, 10), 1, 100)) // 10 buckets of 100 ms
			var st []byte
			for i, s := range tc.steps {
				var remaining, resetAfter int64
				reset := false
				switch s.do {
				case "decide":
					var res Result
					st, res = p.Decide(nil, st, s.at, 1, 0)
					remaining, resetAfter = res.Remaining, res.ResetAfterMs
				case "lease":
					var g Grant
					st, g, _ = p.Lease(nil, st, s.at, s.l)
					remaining, resetAfter = g.Remaining, g.ResetAfterMs
				case "check":
					res := p.Check(st, s.at, 1)
					remaining, resetAfter, reset = res.Remaining, res.ResetAfterMs, res.Reset
				}
				if remaining != s.remaining || (s.resetAfter >= 0 && resetAfter != s.resetAfter) || reset {
					t.Fatalf("step %d (%s at %d): remaining %d, reset after %d ms, reset %v; want %d, %d ms",
						i, s.do, s.at-t0, remaining, resetAfter, reset, s.remaining, s.resetAfter)
				}
			}
		})
	}
}

// TestSuppressionLastSecond: the attempts of the last second are those whose bucket's latest
// request is less than 1000 ms before now; 10 accepted at t0 against 10 per minute weigh in at
// t0+999, not at t0+1000 (the window's average, 10 per minute, is then the rate: no shedding).
func TestSuppressionLastSecond(t *testing.T) {
	p := mustPolicy(t, Suppressed, 2, mustLimitPeriod(t, 10, 60, 0))
	const t0 = int64(1_000_000)
	var st []byte
	for i := 0; i < 10; i++ {
		st, _ = p.Decide(nil, st, t0, 1, 0.9999)
	}
	for _, tc := range []struct {
		at int64
		sf float64
	}{
		{t0 + 999, 1 - (10.0/60)/10},
		{t0 + 1000, 0},
	} {
		if _, res := p.Decide(nil, st, tc.at, 1, 0.9999); !res.Allowed || math.Abs(res.SuppressionFactor-tc.sf) > 1e-9 {
			t.Fatalf("at t0+%d: %+v, want accepted with suppression factor %v", tc.at-t0, res, tc.sf)
		}
	}
}

// TestMeterLongestWindowIsTheRefillTime: a meter's LongestWindowMs is the time an empty meter
// takes to refill, burst × the interval (rounded up to the µs), rounded up to the ms: 3 at 3 per
// second take 3 × 333334 µs, just over a second.
func TestMeterLongestWindowIsTheRefillTime(t *testing.T) {
	for _, tc := range []struct {
		s           Strategy
		rate        float64
		burst, want int64
	}{
		{GCRA, 3, 3, 1001},
		{TokenBucket, 3, 3, 1001},
		{GCRA, 10, 10, 1000},
		{TokenBucket, 0.5, 1, 2000},
	} {
		if got := mustPolicy(t, tc.s, 1, mustBucket(t, tc.rate, tc.burst)).LongestWindowMs(); got != tc.want {
			t.Errorf("%v, %v per second, burst %d: %d ms, want %d", tc.s, tc.rate, tc.burst, got, tc.want)
		}
	}
}
