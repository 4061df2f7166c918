package redislimit

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/floodgate-proxy/floodgate/algorithm"
)

func leaseLua(t *testing.T, key string, p *algorithm.Policy, now int64, l Lease) Grant {
	t.Helper()
	g, err := GrantOf(runScript(t, key, p, LeaseArgs(p, l, Call{NowMs: now})))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestLease walks one key through the reservations of two proxies and ordinary decisions.
func TestLease(t *testing.T) {
	abs, _ := algorithm.NewPolicy(algorithm.Absolute, 1, limit(t, 100, 1, 100)) // 100 per second
	sup, _ := algorithm.NewPolicy(algorithm.Suppressed, 2, limit(t, 100, 1, 100))
	const t0 = int64(1_700_000_000_000)
	type step struct {
		at     int64 // ms after t0
		lease  *Lease
		decide int64 // cost of an ordinary decision, when lease is nil
		want   Grant // Units, Remaining and RetryAfterMs > 0 are checked; AtMs when set
		allow  bool
	}
	cases := []struct {
		name  string
		p     *algorithm.Policy
		steps []step
	}{
		{"two proxies share the quota, and a release frees it", abs, []step{
			{at: 0, lease: &Lease{Want: 30}, want: Grant{Units: 30, Remaining: 70, AtMs: t0}},
			{at: 10, lease: &Lease{Want: 90}, want: Grant{Units: 70, Remaining: 0}},
			{at: 20, decide: 1, allow: false},
			// proxy 1 used 12 of its 30: 18 come back
			{at: 100, lease: &Lease{Release: 30, ReleaseAtMs: t0, Used: 12}, want: Grant{Remaining: 18}},
			{at: 110, decide: 18, allow: true},
			{at: 120, lease: &Lease{Want: 5}, want: Grant{Units: 0, RetryAfterMs: 890}},
		}},
		{"a reservation gone from the window is not released twice", abs, []step{
			{at: 0, lease: &Lease{Want: 40}, want: Grant{Units: 40, Remaining: 60}},
			{at: 1500, lease: &Lease{Release: 40, ReleaseAtMs: t0, Used: 10, Want: 10}, want: Grant{Units: 10, Remaining: 80}},
		}},
		{"used units count at the sync, not before", abs, []step{
			{at: 0, lease: &Lease{Want: 100}, want: Grant{Units: 100, Remaining: 0}},
			{at: 900, lease: &Lease{Release: 100, ReleaseAtMs: t0, Used: 100}, want: Grant{Remaining: 0, RetryAfterMs: 1000}},
			{at: 1100, decide: 1, allow: false}, // the 100 admitted before 900 still count until 1900
			{at: 1900, decide: 1, allow: true},
		}},
		{"suppressed reserves up to the soft quota, then up to the hard one", sup, []step{
			{at: 0, lease: &Lease{Want: 250}, want: Grant{Units: 100, Remaining: 0}},
			{at: 10, lease: &Lease{Want: 250}, want: Grant{Units: 100, Remaining: 0}},
			{at: 20, lease: &Lease{Want: 1}, want: Grant{Units: 0, RetryAfterMs: 990}},
		}},
		{"suppressed: above the soft quota, denials raise the factor", sup, []step{
			{at: 0, lease: &Lease{Want: 100}, want: Grant{Units: 100}},
			{at: 100, lease: &Lease{Release: 100, ReleaseAtMs: t0, Used: 100, Denied: 900, Want: 50},
				want: Grant{Units: 50, SuppressionFactor: 1 - 100.0/1050}}, // 150 accepted (with the grant) + 900 denied in 1 s
		}},
		{"used units count from the last admission, when the proxy says when it was", abs, []step{
			{at: 0, lease: &Lease{Want: 100}, want: Grant{Units: 100, Remaining: 0}},
			{at: 100, lease: &Lease{Release: 100, ReleaseAtMs: t0, Used: 100, UsedAtMs: t0 + 5}, want: Grant{Remaining: 0, RetryAfterMs: 905}},
			{at: 1004, decide: 1, allow: false},
			{at: 1005, decide: 1, allow: true},
		}},
		{"a time in the future counts as now", abs, []step{
			{at: 0, lease: &Lease{Want: 10}, want: Grant{Units: 10, Remaining: 90}},
			{at: 50, lease: &Lease{Release: 10, ReleaseAtMs: t0, Used: 10, UsedAtMs: t0 + 5000}, want: Grant{Remaining: 90}},
			{at: 1049, decide: 91, allow: false}, // the 10 still count, from 50
			{at: 1050, decide: 91, allow: true},
		}},
		{"what a release frees is granted back even above the cap (suppressed, back under the soft quota)", sup, []step{
			{at: 0, lease: &Lease{Want: 100}, want: Grant{Units: 100}},                                    // B: the soft quota
			{at: 10, lease: &Lease{Want: 50}, want: Grant{Units: 50}},                                     // A: above it
			{at: 100, lease: &Lease{Release: 100, ReleaseAtMs: t0, Used: 70}, want: Grant{Units: 0}},      // B: 70 used
			{at: 110, lease: &Lease{Release: 50, ReleaseAtMs: t0 + 10, Want: 50}, want: Grant{Units: 50}}, // A may have spent its 50 meanwhile
			{at: 120, lease: &Lease{Want: 200}, want: Grant{Units: 80, RetryAfterMs: 0}},                  // up to the hard 200: 70 + 50 + 80
		}},
		{"want 0 with nothing to give back changes nothing", abs, []step{
			{at: 0, lease: &Lease{}, want: Grant{Remaining: 100}},
			{at: 1, decide: 100, allow: true},
		}},
	}
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := fmt.Sprintf("{fg:lease:%d}:s", ci)
			rdb.Del(context.Background(), key)
			for i, s := range c.steps {
				if s.lease == nil {
					if got := evalLua(t, key, c.p, t0+s.at, s.decide, 0.5); got.Allowed != s.allow {
						t.Fatalf("step %d: decision %+v, want allowed %v", i, got, s.allow)
					}
					continue
				}
				got := leaseLua(t, key, c.p, t0+s.at, *s.lease)
				if got.Units != s.want.Units || got.Remaining != s.want.Remaining ||
					(s.want.RetryAfterMs > 0 && got.RetryAfterMs != s.want.RetryAfterMs) ||
					(s.want.AtMs > 0 && got.AtMs != s.want.AtMs) || (s.want.SuppressionFactor > 0 && math.Abs(got.SuppressionFactor-s.want.SuppressionFactor) > 1e-6) {
					t.Fatalf("step %d: grant %+v, want %+v", i, got, s.want)
				}
			}
		})
	}
}

// simulateLeases simulates proxies that admit only within their reservations and sync on ticks
// with answers that arrive later (admissions in flight are charged to the next reservation,
// which asks for at least what was left), on one key of p: every proxy changes its rate every
// 300 ms, from idle to well above the limit, so that reservations sized on the last tick's demand
// are often wrong. It returns the times of every admission, in order.
func simulateLeases(t *testing.T, p *algorithm.Policy, key string, seed uint64) []int64 {
	const (
		proxies  = 3
		tick     = 100
		duration = 20_000
	)
	type proxy struct {
		reserved, spent, at int64 // the reservation in use and what was admitted against it
		lastAt              int64 // the time of the last admission
		next                Grant // the answer in flight, applied at answerAt
		inflight            bool
		answerAt            int64
		demand              int64
		percent             int
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	rdb.Del(context.Background(), key)
	ps := make([]*proxy, proxies)
	for i := range ps {
		ps[i] = &proxy{}
	}
	var admitted []int64
	const t0 = int64(1_800_000_000_000)
	for now := int64(0); now < duration; now++ {
		for i, px := range ps {
			if px.inflight && now >= px.answerAt {
				// What was admitted in flight moves to the new reservation.
				px.inflight, px.reserved, px.at = false, px.next.Units, px.next.AtMs
			}
			// Syncs: every proxy on its own phase; Redis runs the script 0 to 39 ms after the
			// send and the answer arrives 1 to 40 ms after it.
			if !px.inflight && (now+int64(i)*37)%tick == 0 {
				left := px.reserved - px.spent
				l := Lease{Release: px.reserved, ReleaseAtMs: px.at, Used: px.spent, Want: max(2*px.demand, left), UsedAtMs: t0 + px.lastAt}
				px.answerAt = now + 1 + rng.Int64N(40)
				px.next = leaseLua(t, key, p, t0+now+rng.Int64N(px.answerAt-now), l)
				px.inflight, px.demand = true, 0
				px.reserved, px.spent = left, 0 // in flight, only what was left may be spent
			}
			if now%300 == 0 {
				px.percent = []int{0, 2, 10, 90}[rng.IntN(4)]
			}
			if rng.IntN(100) < px.percent {
				px.demand++
				if px.spent+1 <= px.reserved {
					px.spent++
					px.lastAt = now
					admitted = append(admitted, now)
				}
			}
		}
	}
	return admitted
}

// TestLeasesNeverOvershoot: whatever the traffic, no sliding window holds more admissions than
// the quota: leases keep the absolute limit exact.
func TestLeasesNeverOvershoot(t *testing.T) {
	const quota, windowMs = 50, 1000
	p := policy(t, algorithm.Absolute, 1, limit(t, quota, 1, 50))
	for seed := uint64(0); seed < 4; seed++ {
		admitted := simulateLeases(t, p, fmt.Sprintf("{fg:sim:%d}:s", seed), seed)
		worst, j := 0, 0
		for i, at := range admitted {
			for admitted[j] <= at-windowMs {
				j++
			}
			worst = max(worst, i-j+1)
		}
		if worst > quota {
			t.Fatalf("seed %d: %d admissions in one window, quota %d", seed, worst, quota)
		}
		if worst < quota*9/10 {
			t.Fatalf("seed %d: at most %d admissions in a window under heavy traffic, quota %d: the leases waste the quota", seed, worst, quota)
		}
		t.Logf("seed %d: %d admissions, at most %d in one window (quota %d)", seed, len(admitted), worst, quota)
	}
}

// TestMeterLeasesStayWithinTheirBound: with leases, a meter's proxies admit at most
// burst + (t + D) / T units in any interval t, D being the longest a reserved unit may wait
// before it is spent (here: its answer's 40 ms, and spent before the next sync, 100 ms later).
func TestMeterLeasesStayWithinTheirBound(t *testing.T) {
	const burst, D = 20, 140
	p := policy(t, algorithm.TokenBucket, 1, bucket(t, 50, burst)) // T = 20 ms
	T := p.IntervalUs(0) / 1000
	for seed := uint64(0); seed < 4; seed++ {
		admitted := simulateLeases(t, p, fmt.Sprintf("{fg:msim:%d}:s", seed), seed)
		var worst float64
		for i := range admitted {
			for j := i; j < len(admitted); j++ {
				excess := float64(j-i+1) - float64(burst) - float64(admitted[j]-admitted[i])/float64(T)
				worst = max(worst, excess)
			}
		}
		if worst > float64(D)/float64(T) {
			t.Fatalf("seed %d: %.1f units above burst + t/T in some interval, bound D/T = %d", seed, worst, D/T)
		}
		if len(admitted) < 20_000/int(T)*6/10 {
			t.Fatalf("seed %d: %d admissions in 20 s at %d ms a unit: the leases waste the meter", seed, len(admitted), T)
		}
		t.Logf("seed %d: %d admissions, at most %.1f units above burst + t/T (bound %d)", seed, len(admitted), worst, D/T)
	}
}
