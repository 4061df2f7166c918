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
// pass, and cost their buckets.
func TestCheckAcceptsWhatThePluginSends(t *testing.T) {
	decide := Scripts()[0]
	var sixteen []algorithm.Limit
	for i := range algorithm.MaxLimits {
		sixteen = append(sixteen, limit(t, float64(1000+i), 100, 100))
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := algorithm.NewPolicy(tc.s, tc.h, tc.limits...)
			if err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{Args(p, 7, 0.25, -1), Args(p, 1, 0, -1),
				LeaseArgs(p, Lease{Release: 20, ReleaseAtMs: 1_700_000_000_000, Used: 12, Denied: 3, UsedAtMs: 1_700_000_000_050, Want: 24}, -1)} {
				n, err := decide.Check(args)
				if err != nil || n != tc.records || Records(p) != tc.records {
					t.Fatalf("%q: %d records, %v; want %d", args, n, err, tc.records)
				}
			}
		})
	}
}

func TestCheckRefusesWhatThePluginNeverSends(t *testing.T) {
	decide := Scripts()[0]
	p, _ := algorithm.NewPolicy(algorithm.Absolute, 1, limit(t, 10, 1, 100))
	good := Args(p, 1, 0.5, -1) // 1 0.5 "" 1 fp 1 | 10 1000 100 10 10 10
	with := func(i int, v string) []string { a := slices.Clone(good); a[i] = v; return a }
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"too few", good[:5], "at least 6"},
		{"a pinned clock", with(2, "1700000000000"), "Redis's clock"},
		{"cost zero", with(0, "0"), "cost"},
		{"draw of one", with(1, "1"), "draw"},
		{"unknown strategy", with(3, "3"), "strategy"},
		{"seventeen limits", with(5, "17"), "limits"},
		{"a limit missing", with(5, "2"), "2 limits take 18"},
		{"a million buckets", with(11, "1000000"), "buckets"},
		{"buckets that do not fit the window", with(11, "9"), "the window and group make 10"},
		{"a group longer than the window", append(with(8, "2000")[:11], "1"), "group_ms"},
		{"a rate that is not a number", with(9, "NaN"), "rate"},
		{"an absolute hard quota above the quota", with(10, "11"), "hard quota"},
		{"a window under a second", with(7, "999"), "window_ms"},
		{"extra arguments", append(slices.Clone(good), "x"), "lease mode"},
		{"lease mode misspelt", append(slices.Clone(good), "leas", "0", "0", "0", "0", "1", "0"), "lease mode"},
		{"a negative lease", append(slices.Clone(good), "lease", "0", "0", "-5", "0", "1", "0"), "used"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decide.Check(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%q: %v, want an error about %q", tc.args, err, tc.want)
			}
		})
	}
	if _, err := (LuaScript{Name: "other"}).Check(good); err == nil || !strings.Contains(err.Error(), "no argument rule") {
		t.Fatalf("a script without a rule: %v", err)
	}
}
