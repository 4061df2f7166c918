package algorithm_test

import (
	"fmt"

	"github.com/floodgate-proxy/floodgate/algorithm"
)

func ExamplePolicy_Decide() {
	perSecond, _ := algorithm.NewLimit(2, 1, 100) // 2 per 1 s window
	perMinute, _ := algorithm.PerPeriod(100, 60, 0)
	policy, _ := algorithm.NewPolicy(algorithm.Absolute, 1, perSecond, perMinute)

	var state []byte // as read from shared data; nil for a new key
	buf := make([]byte, policy.StateSize())
	for _, now := range []int64{0, 10, 20, 1010} {
		next, res := policy.Decide(buf, state, now, 1, 0)
		if res.Changed {
			state = append(state[:0], next...) // written back with compare-and-swap in the plugin
		}
		fmt.Printf("t=%dms allowed=%v remaining=%d retry_after=%dms\n", now, res.Allowed, res.Remaining, res.RetryAfterMs)
	}
	// Output:
	// t=0ms allowed=true remaining=1 retry_after=0ms
	// t=10ms allowed=true remaining=0 retry_after=0ms
	// t=20ms allowed=false remaining=0 retry_after=990ms
	// t=1010ms allowed=true remaining=1 retry_after=0ms
}

// A token bucket of 3 tokens refilled at one every 2 s: a burst of 3, then one every 2 s.
func ExampleNewTokenBucket() {
	limit, _ := algorithm.NewTokenBucket(0.5, 3)
	policy, _ := algorithm.NewPolicy(algorithm.TokenBucket, 1, limit)
	var state []byte
	for _, now := range []int64{0, 0, 0, 0, 2000} {
		next, res := policy.Decide(nil, state, now, 1, 0)
		if res.Changed {
			state = next
		}
		fmt.Printf("t=%dms allowed=%v remaining=%d retry_after=%dms reset_after=%dms\n", now, res.Allowed, res.Remaining, res.RetryAfterMs, res.ResetAfterMs)
	}
	// Output:
	// t=0ms allowed=true remaining=2 retry_after=0ms reset_after=2000ms
	// t=0ms allowed=true remaining=1 retry_after=0ms reset_after=4000ms
	// t=0ms allowed=true remaining=0 retry_after=0ms reset_after=6000ms
	// t=0ms allowed=false remaining=0 retry_after=2000ms reset_after=6000ms
	// t=2000ms allowed=true remaining=0 retry_after=0ms reset_after=6000ms
}

// GCRA takes the limits of the sliding windows: 100 a minute is one every 600 ms, in bursts of
// up to 100.
func ExampleGCRA() {
	limit, _ := algorithm.PerPeriod(100, 60, 0)
	policy, _ := algorithm.NewPolicy(algorithm.GCRA, 1, limit)
	state, res := policy.Decide(nil, nil, 0, 100, 0)
	fmt.Println(res.Allowed, res.Remaining, policy.IntervalUs(0))
	_, res = policy.Decide(nil, state, 300, 1, 0)
	fmt.Println(res.Allowed, res.RetryAfterMs)
	// Output:
	// true 0 600000
	// false 300
}

// Brute-force protection, counting on the response: 5 failed logins per 10 minutes, then a block
// of 10 minutes. Each request is checked without being counted; a failure is recorded when its
// response comes, a success clears the key.
func ExamplePolicy_Record() {
	failures, _ := algorithm.PerPeriod(5, 600, 0)
	policy, _ := algorithm.NewPolicyOpts(algorithm.PolicyOptions{Strategy: algorithm.Absolute, BlockMs: 600_000}, failures)
	const minute = 60_000
	var state []byte
	state, _ = policy.Record(nil, state, 0, 1) // two failures...
	state, _ = policy.Record(nil, state, 30_000, 1)
	state = policy.Reset(nil, minute) // ...then a success
	for i := int64(0); i < 5; i++ {
		state, _ = policy.Record(nil, state, 2*minute+i*1000, 1)
	}
	res := policy.Check(state, 3*minute, 1)
	fmt.Println("check:", res.Allowed, res.Reason, res.RetryAfterMs/1000, "s")
	// The check turned the request down: the block starts.
	state, res = policy.Block(nil, state, 3*minute, 1)
	fmt.Println("block:", res.Allowed, res.Reason, res.RetryAfterMs/1000, "s")
	res = policy.Check(state, 12*minute, 1)
	fmt.Println("later:", res.Allowed, res.Reason, res.RetryAfterMs/1000, "s")
	// Output:
	// check: false quota_exhausted 540 s
	// block: false quota_exhausted 600 s
	// later: false blocked 60 s
}
