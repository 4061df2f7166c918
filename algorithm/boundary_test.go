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
