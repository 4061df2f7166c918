package algorithm

import "testing"

// TestRegressions pins bugs found in review: a huge cost saturating the counters, a key idle for
// more than 2^32 ms, and the reason reported for a cost that can never fit one of several limits.
func TestRegressions(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{name: "a huge denied cost does not lift the hard cap", run: func(t *testing.T) {
			p := mustPolicy(t, Suppressed, 2, mustLimit(t, 10, 1, 100))
			st, _ := p.Decide(nil, nil, 0, 1<<40, 0.99)
			admitted := 0
			for i := 0; i < 1000; i++ {
				var res Result
				if st, res = p.Decide(st, st, 10, 1, 0.99); res.Allowed {
					admitted++
				}
			}
			if admitted > 20 {
				t.Fatalf("admitted %d in one window, hard quota 20", admitted)
			}
		}},
		{name: "a request after more than 2^32 ms idle is counted", run: func(t *testing.T) {
			p := mustPolicy(t, Absolute, 1, mustPerPeriod(t, 1, 10))
			st, _ := p.Decide(nil, nil, 0, 1, 0)
			now := int64(1<<32 + 5000)
			st, first := p.Decide(st, st, now, 1, 0)
			_, second := p.Decide(st, st, now+1, 1, 0)
			if !first.Allowed || second.Allowed {
				t.Fatalf("first %+v, second %+v: want admitted then rejected", first, second)
			}
		}},
		{name: "a cost above one limit's hard quota is reported as never fitting", run: func(t *testing.T) {
			p := mustPolicy(t, Suppressed, 1, mustPerPeriod(t, 5, 1), mustPerPeriod(t, 2, 1))
			st, _ := p.Decide(nil, nil, 0, 2, 0)
			_, res := p.Decide(nil, st, 10, 4, 0.9)
			if res.Allowed || res.Reason != ReasonCostExceedsQuota || res.RetryAfterMs != 0 || res.Decider != 1 {
				t.Fatalf("got %+v, want cost_exceeds_quota by limit 1 without retry", res)
			}
		}},
	} {
		t.Run(tc.name, tc.run)
	}
}
