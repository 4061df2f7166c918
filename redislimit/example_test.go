package redislimit_test

import (
	"fmt"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/redislimit"
)

// A decision is one EVALSHA of the policy's script on the key's state: ARGV as Args builds them,
// the answer read by Result, whatever the strategy.
func ExampleArgs() {
	limit, _ := algorithm.PerPeriod(100, 60, 0) // 100 a minute
	p, _ := algorithm.NewPolicy(algorithm.Absolute, 1, limit)
	script := redislimit.ScriptFor(p)
	args := redislimit.Args(p, redislimit.Call{Cost: 1, Draw: 0.5, NowMs: -1}) // NowMs -1: Redis's clock
	fmt.Printf("%s: cost %s draw %s strategy %s block %s limits %s quota %s window %s\n", script.Name, args[0], args[1], args[4], args[6], args[7], args[8], args[9])
	// The answer ends with Redis's clock, which bounds the offset of the caller's.
	res, redisNow, _ := redislimit.ResultAt([]int64{1, 100, 60000, 99, 0, 60000, 0, 0, -1, 0, 0, 1_700_000_000_007})
	fmt.Println(res.Allowed, res.Remaining, redisNow)
	// Output:
	// decide: cost 1 draw 0.5 strategy 1 block 0 limits 1 quota 100 window 60000
	// true 99 1700000000007
}

// A meter (gcra, token_bucket) has a script of its own, with the emission interval and the burst
// of each limit; a call that reaches Redis after its deadline counts nothing.
func ExampleScriptFor() {
	limit, _ := algorithm.NewTokenBucket(0.5, 3) // 3 tokens, one back every 2 s
	p, _ := algorithm.NewPolicy(algorithm.TokenBucket, 1, limit)
	args := redislimit.Args(p, redislimit.Call{Cost: 1, NowMs: -1, DeadlineMs: 1_700_000_000_050})
	fmt.Println(redislimit.ScriptFor(p).Name, args[2], args[3:])
	_, err := redislimit.Result([]int64{-1})
	fmt.Println(err == redislimit.ErrDeadlinePassed)
	// Output:
	// meter 1700000000050 [0 1 2000000 3 6000]
	// true
}

// The hybrid backend syncs a key with one lease: give back a reservation, report what was
// admitted against it, ask for the next one.
func ExampleLeaseArgs() {
	limit, _ := algorithm.NewLimit(100, 1, 0) // 100 a second
	p, _ := algorithm.NewPolicy(algorithm.Absolute, 1, limit)
	args := redislimit.LeaseArgs(p, redislimit.Lease{Release: 20, ReleaseAtMs: 1_700_000_000_000, Used: 12, Want: 24}, redislimit.Call{NowMs: -1})
	fmt.Println(args[len(args)-8:])
	g, _ := redislimit.GrantOf([]int64{24, 1_700_000_000_100, 100, 1000, 64, 900, 0, 0})
	fmt.Println(g.Units, g.Remaining)
	// Output:
	// [lease 20 1700000000000 12 0 24 0 0]
	// 24 64
}

// Counting on the response in Redis: the plugin checks requests on its own view of the key and
// sends one record per counted response; the answer says how long the key has no room.
func ExampleCall() {
	limit, _ := algorithm.PerPeriod(5, 600, 0) // 5 failures per 10 minutes
	p, _ := algorithm.NewPolicyOpts(algorithm.PolicyOptions{Strategy: algorithm.Absolute, BlockMs: 600_000}, limit)
	args := redislimit.Args(p, redislimit.Call{Mode: redislimit.ModeRecord, Cost: 1, NowMs: -1})
	fmt.Println(args[len(args)-1])
	refund := redislimit.Args(p, redislimit.Call{Mode: redislimit.ModeRefund, Cost: 1, NowMs: -1, AtMs: 1_700_000_000_007})
	fmt.Println(refund[len(refund)-2:])
	// A record that found no room: the block started, 10 minutes without room.
	res, _ := redislimit.Result([]int64{0, 5, 600000, 0, 600000, 600000, 0, 0, 0, 1, 0, 1_700_000_000_007})
	fmt.Println(res.Allowed, res.Reason, res.RetryAfterMs)
	// Output:
	// record
	// [refund 1700000000007]
	// false quota_exhausted 600000
}
