package redislimit_test

import (
	"fmt"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/redislimit"
)

// A decision is one EVALSHA of the script on the key's state: ARGV as Args builds them, the
// answer read by Result.
func ExampleArgs() {
	limit, _ := algorithm.PerPeriod(100, 60, 0) // 100 a minute
	p, _ := algorithm.NewPolicy(algorithm.Absolute, 1, limit)
	args := redislimit.Args(p, 1, 0.5, -1) // cost, draw, "" for Redis's clock, strategy, fingerprint, limits, then each limit
	fmt.Printf("cost %s draw %s strategy %s limits %s quota %s window %s\n", args[0], args[1], args[3], args[5], args[6], args[7])
	res, _ := redislimit.Result([]int64{1, 100, 60000, 99, 0, 60000, 0, 0, -1, 0, 0})
	fmt.Println(res.Allowed, res.Remaining)
	// Output:
	// cost 1 draw 0.5 strategy 1 limits 1 quota 100 window 60000
	// true 99
}

// The hybrid backend syncs a key with one lease: give back a reservation, report what was
// admitted against it, ask for the next one.
func ExampleLeaseArgs() {
	limit, _ := algorithm.NewLimit(100, 1, 0) // 100 a second
	p, _ := algorithm.NewPolicy(algorithm.Absolute, 1, limit)
	args := redislimit.LeaseArgs(p, redislimit.Lease{Release: 20, ReleaseAtMs: 1_700_000_000_000, Used: 12, Want: 24}, -1)
	fmt.Println(args[len(args)-7:])
	g, _ := redislimit.GrantOf([]int64{24, 1_700_000_000_100, 100, 1000, 64, 900, 0, 0})
	fmt.Println(g.Units, g.Remaining)
	// Output:
	// [lease 20 1700000000000 12 0 24 0]
	// 24 64
}
