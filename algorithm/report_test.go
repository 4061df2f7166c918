package algorithm

import (
	"math"
	"testing"
)

// The answer reports the tightest limit (the first of equals) and when its oldest counted unit
// leaves the window.
func TestReportTightestLimitAndResetAfter(t *testing.T) {
	p := mustPolicy(t, Absolute, 0, mustLimitPeriod(t, 10, 1, 100), mustLimitPeriod(t, 10, 60, 0))
	const t0 = int64(1_000_000)
	var st []byte
	for _, s := range []struct {
		at                                int64
		remaining, limit, window, resetMs int64
	}{
		{at: t0, remaining: 9, limit: 10, window: 1000, resetMs: 1000},
		{at: t0 + 300, remaining: 8, limit: 10, window: 1000, resetMs: 700},
		{at: t0 + 1000, remaining: 7, limit: 10, window: 60_000, resetMs: 59_000},
	} {
		var res Result
		st, res = p.Decide(nil, st, s.at, 1, 0.5)
		if !res.Allowed || res.Remaining != s.remaining || res.Limit != s.limit || res.WindowMs != s.window || res.ResetAfterMs != s.resetMs {
			t.Fatalf("at +%d: %+v; want remaining %d of %d per %d ms, reset after %d ms", s.at-t0, res, s.remaining, s.limit, s.window, s.resetMs)
		}
	}
}

// Above the soft quota the suppression factor follows the attempts of the last second when they
// outpace the window's average: 11 attempts at once against 10 per minute.
func TestSuppressionFactorOfABurst(t *testing.T) {
	p := mustPolicy(t, Suppressed, 2, mustLimitPeriod(t, 10, 60, 0))
	const t0 = int64(1_000_000)
	var st []byte
	var res Result
	for i := 0; i < 11; i++ {
		st, res = p.Decide(nil, st, t0, 1, 0.9999)
	}
	// 10 accepted then this attempt: perceived max(11/60 per s, 10 in the last second) = 10.
	want := 1 - (10.0/60)/10
	if math.Abs(res.SuppressionFactor-want) > 1e-9 {
		t.Fatalf("suppression factor %v, want %v (%+v)", res.SuppressionFactor, want, res)
	}
}
