package redishelper

import (
	"encoding/json"
	"testing"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/redislimit"
)

// TestEveryModeRunsAsTheACLUser: every mode of both scripts passes the helper's argument check
// and runs in Redis as the floodgate ACL user: a reset, for one, writes a fresh state with SET
// (no DEL, which the user may not run). The record before the reset leaves the key without room
// (and blocked), the reset gives it all back.
func TestEveryModeRunsAsTheACLUser(t *testing.T) {
	srv := newServer(t, redisAddr, Options{})
	l, _ := algorithm.PerPeriod(2, 60, 0)
	for _, s := range []algorithm.Strategy{algorithm.Absolute, algorithm.GCRA} {
		p, err := algorithm.NewPolicyOpts(algorithm.PolicyOptions{Strategy: s, BlockMs: 60_000}, l)
		if err != nil {
			t.Fatal(err)
		}
		key := "{floodgate:modes:" + s.String() + "}"
		script := redislimit.ScriptFor(p)
		run := func(args []string) []int64 {
			t.Helper()
			b, _ := json.Marshal(append([]string{"EVAL", script.Source, "1", key}, args...))
			status, body := call(t, srv, "/", testToken, string(b))
			var answer struct{ Result []int64 }
			if err := json.Unmarshal([]byte(body), &answer); status != 200 || err != nil {
				t.Fatalf("%s %q: %d %s", s, args[len(args)-1], status, body)
			}
			return answer.Result
		}
		for _, c := range []struct {
			call      redislimit.Call
			remaining int64 // after the call
		}{
			{redislimit.Call{Mode: redislimit.ModeDecide}, 1},
			{redislimit.Call{Mode: redislimit.ModeCheck}, 1},
			{redislimit.Call{Mode: redislimit.ModeRecord, Cost: 2}, 0}, // no room for both: blocked
			{redislimit.Call{Mode: redislimit.ModeBlock}, 0},
			{redislimit.Call{Mode: redislimit.ModeReset}, 2},
			{redislimit.Call{Mode: redislimit.ModeRefund, AtMs: 1}, 2},
		} {
			c.call.Cost, c.call.NowMs = max(c.call.Cost, 1), -1
			res, err := redislimit.Result(run(redislimit.Args(p, c.call)))
			if err != nil || res.Remaining != c.remaining {
				t.Fatalf("%s mode %d: %+v %v, want %d remaining", s, c.call.Mode, res, err, c.remaining)
			}
		}
		if _, err := redislimit.GrantOf(run(redislimit.LeaseArgs(p, redislimit.Lease{Want: 1, Denied: 1, Rejected: 1}, redislimit.Call{NowMs: -1}))); err != nil {
			t.Fatal(err)
		}
	}
}
