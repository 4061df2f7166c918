package redislimit

import (
	"slices"
	"strings"
	"testing"

	"github.com/floodgate-proxy/floodgate/algorithm"
)

func TestEveryScriptHasAnArgumentRule(t *testing.T) {
	for _, s := range Scripts() {
		if _, err := s.Check(nil); err == nil || strings.Contains(err.Error(), "no argument rule") {
			t.Errorf("script %s: %v: the helper refuses every call of a script without a rule in LuaScript.Check", s.Name, err)
		}
	}
}

// TestCheckAcceptsWhatThePluginSends: the arguments Args and LeaseArgs build for valid policies
// of every strategy pass, and cost their records.
func TestCheckAcceptsWhatThePluginSends(t *testing.T) {
	var sixteen []algorithm.Limit
	for i := range algorithm.MaxLimits {
		sixteen = append(sixteen, limit(t, float64(1000+i), 100, 100))
	}
	bucket, err := algorithm.NewTokenBucket(2.5, 40)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		s       algorithm.Strategy
		h       float64
		limits  []algorithm.Limit
		records int
	}{
		{"one second", algorithm.Absolute, 1, []algorithm.Limit{limit(t, 10, 1, 0)}, 10},
		{"fractional, suppressed", algorithm.Suppressed, 2.5, []algorithm.Limit{limit(t, 0.5, 4, 50), limit(t, 100, 3600, 0)}, 80 + 1000},
		{"the largest policy", algorithm.Suppressed, 1000, sixteen, 16000},
		{"gcra", algorithm.GCRA, 1, []algorithm.Limit{limit(t, 10, 1, 0), limit(t, 100, 60, 0)}, 2},
		{"token bucket", algorithm.TokenBucket, 1, []algorithm.Limit{bucket}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := algorithm.NewPolicy(tc.s, tc.h, tc.limits...)
			if err != nil {
				t.Fatal(err)
			}
			script := ScriptFor(p)
			for _, args := range [][]string{Args(p, Call{Cost: 7, Draw: 0.25, NowMs: -1}), Args(p, Call{Cost: 1, NowMs: -1, DeadlineMs: 1_700_000_000_000}),
				LeaseArgs(p, Lease{Release: 20, ReleaseAtMs: 1_700_000_000_000, Used: 12, Denied: 3, UsedAtMs: 1_700_000_000_050, Want: 24}, Call{NowMs: -1})} {
				n, err := script.Check(args)
				if err != nil || n != tc.records || Records(p) != tc.records {
					t.Fatalf("%q: %d records, %v; want %d", args, n, err, tc.records)
				}
			}
		})
	}
}

func TestCheckRefusesWhatThePluginNeverSends(t *testing.T) {
	p, _ := algorithm.NewPolicy(algorithm.Absolute, 1, limit(t, 10, 1, 100))
	decide := ScriptFor(p)
	good := Args(p, Call{Cost: 1, Draw: 0.5, NowMs: -1}) // 1 0.5 "" "" 1 fp 1 | 10 1000 100
	with := func(i int, v string) []string { a := slices.Clone(good); a[i] = v; return a }
	gcra, _ := algorithm.NewPolicy(algorithm.GCRA, 1, limit(t, 10, 1, 0))
	meter := ScriptFor(gcra)
	meterArgs := Args(gcra, Call{Cost: 1, NowMs: -1}) // 1 "" "" 1 | T b window
	for _, tc := range []struct {
		name   string
		script LuaScript
		args   []string
		want   string
	}{
		{"too few", decide, good[:5], "fingerprint is missing"},
		{"a pinned clock", decide, with(2, "1700000000000"), "Redis's clock"},
		{"a deadline that is not a time", decide, with(3, "soon"), "deadline"},
		{"cost zero", decide, with(0, "0"), "cost"},
		{"draw of one", decide, with(1, "1"), "draw"},
		{"a meter's strategy", decide, with(4, "3"), "strategy 3"},
		{"seventeen limits", decide, with(6, "17"), "limits"},
		{"a limit missing", decide, with(6, "2"), "quota is missing"},
		{"two thousand buckets", decide, append(with(8, "2000")[:9], "1"), "needs 2000 buckets, more than 1000"},
		{"a group longer than the window", decide, with(9, "2000"), "group_ms"},
		{"a window under a second", decide, with(8, "999"), "window_ms"},
		{"extra arguments", decide, append(slices.Clone(good), "x"), "'lease' and 6 integers follow"},
		{"lease mode misspelt", decide, append(slices.Clone(good), "leas", "0", "0", "0", "0", "1", "0"), "'lease' and 6 integers follow"},
		{"a negative lease", decide, append(slices.Clone(good), "lease", "0", "0", "-5", "0", "1", "0"), "used"},
		{"a meter with a pinned clock", meter, append(slices.Clone(meterArgs[:1]), append([]string{"1700000000000"}, meterArgs[2:]...)...), "Redis's clock"},
		{"a meter with seventeen limits", meter, append(slices.Clone(meterArgs[:3]), append([]string{"17"}, meterArgs[4:]...)...), "limits"},
		{"a meter with a zero interval", meter, append(slices.Clone(meterArgs[:4]), "0", meterArgs[5], meterArgs[6]), "interval_us"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.script.Check(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%q: %v, want an error about %q", tc.args, err, tc.want)
			}
		})
	}
	if _, err := (LuaScript{Name: "other"}).Check(good); err == nil || !strings.Contains(err.Error(), "no argument rule") {
		t.Fatalf("a script without a rule: %v", err)
	}
}
