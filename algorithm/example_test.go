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
