package algorithm

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestLeaseSpecVectors walks two hybrid proxies' leases on one key of an absolute policy (10 per
// second, 100 ms buckets) through reservations, releases, reports and the window sliding. The
// redislimit differential test holds the Lua scripts to the same answers.
func TestLeaseSpecVectors(t *testing.T) {
	p := mustPolicy(t, Absolute, 0, mustLimitPeriod(t, 10, 1, 100))
	const t0 = int64(1_000_000)
	steps := []struct {
		name                      string
		at                        int64
		l                         Lease
		units, remaining, retryMs int64
		changed                   bool
	}{
		{name: "a first reservation", at: t0, l: Lease{Want: 4}, units: 4, remaining: 6, changed: true},
		{name: "3 of 4 used at t0+50: the unused unit comes back, 7 fit", at: t0 + 100,
			l: Lease{Release: 4, ReleaseAtMs: t0, Used: 3, UsedAtMs: t0 + 50, Want: 8}, units: 7, remaining: 0, changed: true},
		{name: "full: nothing until the units used at t0+50 leave the window", at: t0 + 1000,
			l: Lease{Want: 5}, units: 0, remaining: 0, retryMs: 50},
		{name: "the 3 units left the window", at: t0 + 1050, l: Lease{Want: 5}, units: 3, remaining: 0, changed: true},
		{name: "a release whose reservation left the window frees nothing more", at: t0 + 1100,
			l: Lease{Release: 7, ReleaseAtMs: t0 + 100, Want: 2}, units: 2, remaining: 5, changed: true},
		{name: "what a release freed is granted back", at: t0 + 1200,
			l: Lease{Release: 3, ReleaseAtMs: t0 + 1050, Want: 20}, units: 8, remaining: 0, changed: true},
		{name: "a use reported in the future counts now", at: t0 + 1300,
			l: Lease{Release: 8, ReleaseAtMs: t0 + 1200, Used: 8, UsedAtMs: t0 + 99_999, Want: 1}, units: 0, remaining: 0, retryMs: 800, changed: true},
		{name: "nothing to report, nothing wanted: unchanged", at: t0 + 1300, l: Lease{}, units: 0, remaining: 0, retryMs: 800},
	}
	var st []byte
	for _, s := range steps {
		next, g, changed := p.Lease(nil, st, s.at, s.l)
		if g.Units != s.units || g.Remaining != s.remaining || g.RetryAfterMs != s.retryMs || changed != s.changed || g.AtMs != s.at {
			t.Fatalf("%s: grant %+v changed %v; want units %d, remaining %d, retry %d ms, changed %v",
				s.name, g, changed, s.units, s.remaining, s.retryMs, s.changed)
		}
		if g.Limit != 10 || g.WindowMs != 1000 {
			t.Fatalf("%s: limit %d per %d ms, want 10 per 1000", s.name, g.Limit, g.WindowMs)
		}
		st = next
	}
}

// Reported units are counted when they were used: into the newest bucket when they fall within
// its group (its end moves up to them), into a new bucket otherwise; so each leaves the window
// on time, and never early.
func TestLeaseReportsAreCountedInTime(t *testing.T) {
	p := mustPolicy(t, Absolute, 0, mustLimitPeriod(t, 10, 1, 100))
	const t0 = int64(1_000_000)
	steps := []struct {
		name             string
		at               int64
		l                Lease
		units, remaining int64
	}{
		{name: "proxy 1 reserves", at: t0, l: Lease{Want: 5}, units: 5, remaining: 5},
		{name: "proxy 2 reserves", at: t0, l: Lease{Want: 3}, units: 3, remaining: 2},
		{name: "proxy 2 used its 3 at t0+50: same bucket, which now ends at t0+50", at: t0 + 50,
			l: Lease{Release: 3, ReleaseAtMs: t0, Used: 3, UsedAtMs: t0 + 50}, units: 0, remaining: 2},
		{name: "proxy 1 used its 5 at t0+250: a bucket of their own", at: t0 + 250,
			l: Lease{Release: 5, ReleaseAtMs: t0, Used: 5, UsedAtMs: t0 + 250}, units: 0, remaining: 2},
		{name: "at t0+1040 proxy 2's units are still in the window", at: t0 + 1040, l: Lease{Want: 10}, units: 2, remaining: 0},
		{name: "at t0+1050 they left, proxy 1's did not", at: t0 + 1050, l: Lease{Want: 10}, units: 3, remaining: 0},
	}
	var st []byte
	for _, s := range steps {
		next, g, _ := p.Lease(nil, st, s.at, s.l)
		if g.Units != s.units || g.Remaining != s.remaining {
			t.Fatalf("%s: grant %+v; want units %d, remaining %d", s.name, g, s.units, s.remaining)
		}
		st = next
	}
}

// TestSuppressedLeaseSpecVectors: above the soft quota (10 per second) a suppressed policy
// reserves up to the hard quota (20), and its grants carry the suppression factor of the
// attempts (accepted and denied) the proxies reported.
func TestSuppressedLeaseSpecVectors(t *testing.T) {
	p := mustPolicy(t, Suppressed, 2, mustLimitPeriod(t, 10, 1, 100))
	const t0 = int64(1_000_000)
	steps := []struct {
		name                      string
		at                        int64
		l                         Lease
		units, remaining, retryMs int64
		sf                        float64
	}{
		{name: "up to the soft quota", at: t0, l: Lease{Want: 12}, units: 10},
		{name: "all used: above the soft quota, shed by the rate of the attempts", at: t0 + 100,
			l: Lease{Release: 10, ReleaseAtMs: t0, Used: 10, Want: 5}, units: 5, sf: 1 - 10.0/15},
		{name: "denials feed the factor; up to the hard quota", at: t0 + 200,
			l: Lease{Release: 5, ReleaseAtMs: t0 + 100, Used: 2, Denied: 3, Want: 20}, units: 8, sf: 1 - 10.0/23},
		{name: "at the hard quota: nothing until the units of t0+100 leave", at: t0 + 200,
			l: Lease{Want: 1}, units: 0, retryMs: 900},
	}
	var st []byte
	for _, s := range steps {
		next, g, _ := p.Lease(nil, st, s.at, s.l)
		if g.Units != s.units || g.Remaining != s.remaining || g.RetryAfterMs != s.retryMs || math.Abs(g.SuppressionFactor-s.sf) > 1e-9 {
			t.Fatalf("%s: grant %+v; want units %d, remaining %d, retry %d ms, suppression factor %v",
				s.name, g, s.units, s.remaining, s.retryMs, s.sf)
		}
		st = next
	}
}

// TestMeterLeaseSpecVectors: two proxies lease from a GCRA meter (10 per second: a unit every
// 100 ms, a burst of 10). Units are charged when reserved; a release returns at most what would
// not have refilled since the reservation.
func TestMeterLeaseSpecVectors(t *testing.T) {
	p := mustPolicy(t, GCRA, 0, mustLimitPeriod(t, 10, 1, 0))
	const t0 = int64(1_000_000)
	steps := []struct {
		name                      string
		at                        int64
		l                         Lease
		units, remaining, retryMs int64
		changed                   bool
	}{
		{name: "a first reservation", at: t0, l: Lease{Want: 4}, units: 4, remaining: 6, changed: true},
		{name: "another proxy's", at: t0, l: Lease{Want: 4}, units: 4, remaining: 2, changed: true},
		{name: "4 unused after 100 ms: the 3 that would not have refilled come back", at: t0 + 100,
			l: Lease{Release: 4, ReleaseAtMs: t0}, units: 0, remaining: 6, changed: true},
		{name: "3 of 4 used: the unused one comes back", at: t0 + 100,
			l: Lease{Release: 4, ReleaseAtMs: t0, Used: 3}, units: 0, remaining: 7, changed: true},
		{name: "all that is left", at: t0 + 100, l: Lease{Want: 10}, units: 7, remaining: 0, changed: true},
		{name: "empty: the next unit in 100 ms", at: t0 + 100, l: Lease{Want: 1}, units: 0, remaining: 0, retryMs: 100},
		{name: "a reservation long refilled returns nothing", at: t0 + 5000,
			l: Lease{Release: 7, ReleaseAtMs: t0 + 100}, units: 0, remaining: 10, changed: true},
	}
	var st []byte
	for _, s := range steps {
		next, g, changed := p.Lease(nil, st, s.at, s.l)
		if g.Units != s.units || g.Remaining != s.remaining || g.RetryAfterMs != s.retryMs || changed != s.changed || g.AtMs != s.at {
			t.Fatalf("%s: grant %+v changed %v; want units %d, remaining %d, retry %d ms, changed %v",
				s.name, g, changed, s.units, s.remaining, s.retryMs, s.changed)
		}
		st = next
	}
}

// Proxies that spend at most what they were granted, within half the window of the grant (as the
// plugin's reservations lapse), and report it at their next lease, which comes at random times
// but within a quarter of the window while they hold a reservation (the plugin syncs every
// interval), never admit more than the quota in any window, whatever the timing.
func TestLeasesNeverAdmitMoreThanTheQuota(t *testing.T) {
	for _, s := range []Strategy{Absolute, Suppressed} {
		t.Run(s.String(), func(t *testing.T) {
			p, bound := mustPolicy(t, s, 0, mustLimitPeriod(t, 20, 1, 50)), int64(20)
			if s == Suppressed {
				p, bound = mustPolicy(t, s, 1.5, mustLimitPeriod(t, 20, 1, 50)), 30 // the hard quota
			}
			for seed := uint64(0); seed < 5; seed++ {
				rng := rand.New(rand.NewPCG(seed, 3))
				type proxy struct{ reserved, at, used, usedAt int64 }
				proxies := make([]proxy, 3)
				var st []byte
				var admitted []int64 // admission times
				now := int64(1_000_000)
				for i := 0; i < 3000; i++ {
					now += rng.Int64N(40)
					x := &proxies[rng.IntN(len(proxies))]
					if due := x.reserved > 0 && now-x.at >= 250; !due && rng.IntN(4) > 0 {
						// a request: spend from the reservation if any is left
						if x.used < x.reserved && now < x.at+500 {
							x.used++
							x.usedAt = now
							admitted = append(admitted, now)
						}
						continue
					}
					var g Grant
					st, g, _ = p.Lease(nil, st, now, Lease{Release: x.reserved, ReleaseAtMs: x.at, Used: x.used, UsedAtMs: x.usedAt, Want: 1 + rng.Int64N(15)})
					if g.Units < 0 {
						t.Fatalf("negative grant %+v", g)
					}
					*x = proxy{reserved: g.Units, at: g.AtMs}
				}
				for j := range admitted {
					k := j
					for k < len(admitted) && admitted[k]-admitted[j] < 1000 {
						k++
					}
					if n := int64(k - j); n > bound {
						t.Fatalf("seed %d: %d admitted within 1 s from %d, bound %d", seed, n, admitted[j], bound)
					}
				}
				if len(admitted) < 100 {
					t.Fatalf("seed %d: only %d admitted: leases granted too little", seed, len(admitted))
				}
			}
		})
	}
}

func mustLimitPeriod(t testing.TB, n, periodS, groupMs int64) Limit {
	t.Helper()
	l, err := PerPeriod(n, periodS, groupMs)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
