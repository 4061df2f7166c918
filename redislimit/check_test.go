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
// of every strategy, in every mode the strategy has, pass and cost their records.
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
		o       algorithm.PolicyOptions
		limits  []algorithm.Limit
		records int
	}{
		{"one second", algorithm.PolicyOptions{Strategy: algorithm.Absolute}, []algorithm.Limit{limit(t, 10, 1, 0)}, 10},
		{"one second, a block of 31 days", algorithm.PolicyOptions{Strategy: algorithm.Absolute, BlockMs: algorithm.MaxBlockMs}, []algorithm.Limit{limit(t, 10, 1, 0)}, 10},
		{"fractional, suppressed", algorithm.PolicyOptions{Strategy: algorithm.Suppressed, HardLimitFactor: 2.5, BlockMs: 60_000}, []algorithm.Limit{limit(t, 0.5, 4, 50), limit(t, 100, 3600, 0)}, 80 + 1000},
		{"the largest policy", algorithm.PolicyOptions{Strategy: algorithm.Suppressed, HardLimitFactor: 1000}, sixteen, 16000},
		{"gcra", algorithm.PolicyOptions{Strategy: algorithm.GCRA}, []algorithm.Limit{limit(t, 10, 1, 0), limit(t, 100, 60, 0)}, 2},
		{"token bucket with a block", algorithm.PolicyOptions{Strategy: algorithm.TokenBucket, BlockMs: 600_000}, []algorithm.Limit{bucket}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := algorithm.NewPolicyOpts(tc.o, tc.limits...)
			if err != nil {
				t.Fatal(err)
			}
			script := ScriptFor(p)
			calls := [][]string{
				Args(p, Call{Cost: 7, Draw: 0.25, NowMs: -1}),
				Args(p, Call{Cost: 1, NowMs: -1, DeadlineMs: 1_700_000_000_000}),
				Args(p, Call{Mode: ModeReset, Cost: 1, NowMs: -1}),
				Args(p, Call{Mode: ModeRefund, Cost: 3, NowMs: -1, AtMs: 1_700_000_000_000, DeadlineMs: 1_700_000_000_050}),
				LeaseArgs(p, Lease{Release: 20, ReleaseAtMs: 1_700_000_000_000, Used: 12, Denied: 3, Rejected: 2, UsedAtMs: 1_700_000_000_050, Want: 24}, Call{NowMs: -1}),
			}
			if p.Strategy().CountsOnResponse() == nil {
				for _, m := range []Mode{ModeCheck, ModeBlock, ModeRecord} {
					calls = append(calls, Args(p, Call{Mode: m, Cost: 2, NowMs: -1, DeadlineMs: 1_700_000_000_000}))
				}
			}
			for _, args := range calls {
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
	good := Args(p, Call{Cost: 1, Draw: 0.5, NowMs: -1}) // 1 0.5 "" "" 1 fp 0 1 | 10 1000 100
	with := func(i int, v string) []string { a := slices.Clone(good); a[i] = v; return a }
	plus := func(v ...string) []string { return append(slices.Clone(good), v...) }
	sup, _ := algorithm.NewPolicy(algorithm.Suppressed, 2, limit(t, 10, 1, 100))
	gcra, _ := algorithm.NewPolicy(algorithm.GCRA, 1, limit(t, 10, 1, 0))
	meter := ScriptFor(gcra)
	meterArgs := Args(gcra, Call{Cost: 1, NowMs: -1}) // 1 "" "" 0 1 | T b window
	meterWith := func(i int, v string) []string { a := slices.Clone(meterArgs); a[i] = v; return a }
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
		{"a negative block", decide, with(6, "-1"), "block_ms"},
		{"a block over 31 days", decide, with(6, "2678400001"), "block_ms"},
		{"seventeen limits", decide, with(7, "17"), "limits"},
		{"a limit missing", decide, with(7, "2"), "quota is missing"},
		{"two thousand buckets", decide, append(with(9, "2000")[:10], "1"), "needs 2000 buckets, more than 1000"},
		{"a group longer than the window", decide, with(10, "2000"), "group_ms"},
		{"a window under a second", decide, with(9, "999"), "window_ms"},
		{"extra arguments", decide, plus("x"), "a mode follows"},
		{"lease mode misspelt", decide, plus("leas", "0", "0", "0", "0", "1", "0", "0"), "a mode follows"},
		{"a lease of the old shape", decide, plus("lease", "0", "0", "0", "0", "1", "0"), "mode lease takes 7"},
		{"a negative lease", decide, plus("lease", "0", "0", "-5", "0", "1", "0", "0"), "used"},
		{"a refund without its time", decide, plus("refund"), "mode refund takes 1"},
		{"a refund at a negative time", decide, plus("refund", "-1"), "at_ms"},
		{"a check with arguments", decide, plus("check", "1"), "mode check takes 0"},
		{"a suppressed record", decide, append(Args(sup, Call{Cost: 1, NowMs: -1}), "record"), "does not count on the response"},
		{"an unknown mode", decide, Args(p, Call{Mode: 9, Cost: 1, NowMs: -1}), "a mode follows"},
		{"a meter with a pinned clock", meter, meterWith(1, "1700000000000"), "Redis's clock"},
		{"a meter with a negative block", meter, meterWith(3, "-5"), "block_ms"},
		{"a meter with seventeen limits", meter, meterWith(4, "17"), "limits"},
		{"a meter with a zero interval", meter, meterWith(5, "0"), "interval_us"},
		{"a meter refund without its time", meter, append(slices.Clone(meterArgs), "refund"), "mode refund takes 1"},
		{"a meter's old lease", meter, append(slices.Clone(meterArgs), "lease", "0", "0", "0", "0", "1", "0"), "mode lease takes 7"},
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
