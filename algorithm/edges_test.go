package algorithm

import "testing"

// A refund gives back only an admission still in the window, and says whether it changed
// anything: not for expired units, nor for a meter that refilled.
func TestRefundEdges(t *testing.T) {
	const t0 = int64(1_000_000)
	t.Run("absolute", func(t *testing.T) {
		p := mustPolicy(t, Absolute, 0, mustLimitPeriod(t, 10, 1, 100))
		st, _ := p.Decide(nil, nil, t0, 1, 0.5)
		st, _ = p.Decide(nil, st, t0+500, 1, 0.5)
		// The admission of t0 left the window at t0+1000: nothing to give back, not even from
		// the later bucket.
		next, changed := p.Refund(nil, st, t0+1000, t0, 1)
		if changed {
			t.Fatal("a refund of an expired admission changed the state")
		}
		if res := p.Check(next, t0+1000, 1); res.Remaining != 9 {
			t.Fatalf("remaining %d after a refund of an expired admission, want 9", res.Remaining)
		}
		// Everything expired: nothing to give back at all, even for a time inside the window.
		if _, changed := p.Refund(nil, st, t0+1500, t0+600, 1); changed {
			t.Fatal("a refund on an expired state changed it")
		}
		// A live one comes back.
		next, changed = p.Refund(nil, st, t0+1000, t0+500, 1)
		if res := p.Check(next, t0+1000, 1); !changed || res.Remaining != 10 {
			t.Fatalf("changed %v, remaining %d after a refund of a live admission, want 10", changed, res.Remaining)
		}
	})
	t.Run("gcra", func(t *testing.T) {
		p := mustPolicy(t, GCRA, 0, mustLimitPeriod(t, 10, 1, 0)) // a unit every 100 ms
		st, _ := p.Decide(nil, nil, t0, 1, 0.5)
		if _, changed := p.Refund(nil, st, t0+100, t0, 1); changed {
			t.Fatal("a refund on a meter that just refilled changed it")
		}
		if _, changed := p.Refund(nil, st, t0+5000, t0, 1); changed {
			t.Fatal("a refund on a meter long refilled changed it")
		}
		if _, changed := p.Refund(nil, st, t0+50, t0, 1); !changed {
			t.Fatal("a refund on a meter still charged changed nothing")
		}
	})
}

// Check answers for a blocked key with no decider, and reports Reset only for a state that is
// not the policy's (none for a fresh key), and when the oldest live unit leaves the window.
func TestCheckEdges(t *testing.T) {
	const t0 = int64(1_000_000)
	p := mustPolicyOpts(t, PolicyOptions{Strategy: Absolute, BlockMs: 5000}, mustLimitPeriod(t, 2, 1, 100))
	if res := p.Check(nil, t0, 1); res.Reset || !res.Allowed || res.ResetAfterMs != 0 {
		t.Fatalf("a fresh key: %+v", res)
	}
	if res := p.Check([]byte("not a state"), t0, 1); !res.Reset || !res.Allowed {
		t.Fatalf("a state of something else: %+v, want Reset", res)
	}
	st, _ := p.Decide(nil, nil, t0, 1, 0.5)
	st, _ = p.Decide(nil, st, t0+300, 1, 0.5)
	if res := p.Check(st, t0+400, 1); res.Allowed || res.ResetAfterMs != 600 || res.Reason != ReasonQuotaExhausted {
		t.Fatalf("a full key: %+v, want a rejection with the first unit leaving in 600 ms", res)
	}
	if res := p.Check(st, t0+1300, 1); !res.Allowed || res.ResetAfterMs != 0 || res.Remaining != 2 {
		t.Fatalf("every unit expired: %+v", res)
	}
	st, _ = p.Decide(nil, st, t0+400, 1, 0.5) // rejected: the block starts
	if res := p.Check(st, t0+500, 1); res.Reason != ReasonBlocked || res.Decider != -1 || res.Allowed {
		t.Fatalf("a blocked key: %+v, want ReasonBlocked and no decider", res)
	}
	if _, res := p.Block(nil, st, t0+500, 1); res.Reason != ReasonBlocked || res.Decider != -1 || res.Allowed {
		t.Fatalf("Block on a blocked key: %+v, want ReasonBlocked and no decider", res)
	}
	if _, res := p.Record(nil, st, t0+500, 1); res.Decider != -1 {
		t.Fatalf("Record on a blocked key: %+v, want no decider", res)
	}
}

// A lease reporting rejections for a policy without a block is answered as any other.
func TestLeaseRejectionsWithoutBlock(t *testing.T) {
	for _, s := range []Strategy{Absolute, GCRA} {
		p := mustPolicy(t, s, 0, mustLimitPeriod(t, 10, 1, 100))
		st, g, _ := p.Lease(nil, nil, 1_000_000, Lease{Want: 5, Rejected: 3, Denied: 3})
		if g.Units != 5 || g.RetryAfterMs != 0 {
			t.Fatalf("%s: %+v, want 5 units and no block", s, g)
		}
		if _, g, _ = p.Lease(nil, st, 1_000_000, Lease{Want: 5}); g.Units != 5 || g.Remaining != 0 {
			t.Fatalf("%s: the next lease %+v, want the 5 units left", s, g)
		}
	}
}

// An allowed answer has no decider, nor has a blocked one: Decider names the limit that rejected.
func TestDeciderOfAllowedAndBlockedAnswers(t *testing.T) {
	const t0 = int64(1_000_000)
	for _, p := range []*Policy{
		mustPolicyOpts(t, PolicyOptions{Strategy: Suppressed, HardLimitFactor: 2, BlockMs: 5000}, mustLimitPeriod(t, 2, 1, 100), mustLimitPeriod(t, 3, 60, 0)),
		mustPolicyOpts(t, PolicyOptions{Strategy: GCRA, BlockMs: 5000}, mustLimitPeriod(t, 2, 1, 0), mustLimitPeriod(t, 3, 60, 0)),
	} {
		var st []byte
		var res Result
		for i := 0; i < 20 && (i == 0 || res.Allowed); i++ {
			st, res = p.Decide(nil, st, t0, 1, 0.9999)
			if res.Allowed && res.Decider != -1 {
				t.Fatalf("%s: allowed answer %d with decider %d", p.Strategy(), i, res.Decider)
			}
		}
		if res.Allowed || res.Decider < 0 {
			t.Fatalf("%s: the rejection %+v names no limit", p.Strategy(), res)
		}
		if _, res = p.Decide(nil, st, t0+100, 1, 0.9999); res.Reason != ReasonBlocked || res.Decider != -1 {
			t.Fatalf("%s: a blocked key's answer %+v, want ReasonBlocked and no decider", p.Strategy(), res)
		}
	}
}
