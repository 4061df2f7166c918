package algorithm

import "testing"

// A refunded admission gives its units back: the key admits as if it had never been counted, and
// the refund is exact (no more comes back than was taken).
func TestRefundGivesBackExactlyTheAdmission(t *testing.T) {
	for _, s := range []Strategy{Absolute, Suppressed, GCRA, TokenBucket} {
		t.Run(s.String(), func(t *testing.T) {
			var l Limit
			var err error
			if s == TokenBucket {
				l, err = NewTokenBucket(1, 5)
			} else {
				l, err = PerPeriod(5, 60, 0)
			}
			if err != nil {
				t.Fatal(err)
			}
			h := 1.0
			p, err := NewPolicy(s, h, l)
			if err != nil {
				t.Fatal(err)
			}
			const t0 = 1_000_000
			var st []byte
			for i := 0; i < 5; i++ {
				var res Result
				st, res = p.Decide(nil, st, t0+int64(i)*10, 1, 0.99)
				if !res.Allowed {
					t.Fatalf("request %d refused", i)
				}
			}
			if _, res := p.Decide(nil, st, t0+50, 1, 0.99); res.Allowed {
				t.Fatal("a sixth request admitted")
			}
			// Refund the admission made at t0+20, then the key has room for exactly one more.
			st, changed := p.Refund(nil, st, t0+60, t0+20, 1)
			if !changed {
				t.Fatal("the refund changed nothing")
			}
			st, res := p.Decide(nil, st, t0+70, 1, 0.99)
			if !res.Allowed {
				t.Fatalf("refunded unit not available: %+v", res)
			}
			if _, res := p.Decide(nil, st, t0+80, 1, 0.99); res.Allowed {
				t.Fatal("a refund gave back more than it took")
			}
		})
	}
}

func TestRefundOfAnUnknownStateChangesNothing(t *testing.T) {
	l, _ := PerPeriod(5, 60, 0)
	p, _ := NewPolicy(Absolute, 1, l)
	if _, changed := p.Refund(nil, nil, 1000, 900, 1); changed {
		t.Fatal("a refund created a state")
	}
	if _, changed := p.Refund(nil, []byte("garbage"), 1000, 900, 1); changed {
		t.Fatal("a refund rewrote a foreign state")
	}
}

// A refund of units that left the window (sliding window) or refilled (meter) gives nothing back.
func TestRefundAfterTheWindowGivesNothing(t *testing.T) {
	l, _ := PerPeriod(2, 1, 0)
	p, _ := NewPolicy(Absolute, 1, l)
	st, _ := p.Decide(nil, nil, 1000, 1, 0)
	st, _ = p.Decide(nil, st, 1500, 1, 0)
	st, _ = p.Refund(nil, st, 2100, 1000, 1) // the admission at 1000 left the window at 2000
	st, res := p.Decide(nil, st, 2100, 1, 0)
	if !res.Allowed || res.Remaining != 0 {
		t.Fatalf("after a refund of an expired admission: %+v, want 1 admitted and 0 left", res)
	}
	if _, res := p.Decide(nil, st, 2100, 1, 0); res.Allowed {
		t.Fatal("the refund of an expired admission freed a unit")
	}
}

// A suppressed policy keeps a refunded attempt as denied: every attempt feeds its perceived rate.
func TestRefundKeepsASuppressedAttempt(t *testing.T) {
	l, _ := PerPeriod(10, 1, 0)
	p, _ := NewPolicy(Suppressed, 2, l)
	st, _ := p.Decide(nil, nil, 1000, 1, 0.99)
	st, _ = p.Refund(nil, st, 1010, 1000, 1)
	r := state{p: p, b: st}.ring(0)
	if r.sumA() != 0 || r.sumD() != 1 {
		t.Fatalf("after the refund: %d accepted, %d denied; want 0 and 1", r.sumA(), r.sumD())
	}
}
