package redislimit

import (
	"context"
	"fmt"
	"testing"

	"github.com/floodgate-proxy/floodgate/algorithm"
)

// A cost of exactly the quota (the burst, for meters) fits a fresh key, in the script as in
// algorithm/; one more can never fit. The differential test's costs stay below its quotas.
func TestCostAtTheQuotaBoundary(t *testing.T) {
	l, err := algorithm.PerPeriod(3, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := algorithm.NewTokenBucket(1, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*algorithm.Policy{
		policy(t, algorithm.Absolute, 1, l),
		policy(t, algorithm.Suppressed, 2, l),
		policy(t, algorithm.GCRA, 1, l),
		policy(t, algorithm.TokenBucket, 1, tl),
	} {
		t.Run(p.Strategy().String(), func(t *testing.T) {
			const now = int64(1_700_000_000_000)
			quota := int64(3)
			if p.Strategy() == algorithm.Suppressed {
				quota = 6 // the hard quota: above the soft one a request may be shed, never refused
			}
			for _, tc := range []struct {
				cost    int64
				allowed bool
			}{{cost: quota, allowed: true}, {cost: quota + 1}} {
				key := fmt.Sprintf("{fg:boundary}:%s:%d", p.Strategy(), tc.cost)
				rdb.Del(context.Background(), key)
				_, want := p.Decide(nil, nil, now, tc.cost, 0.99)
				got := evalLua(t, key, p, now, tc.cost, 0.99)
				if want.Allowed != tc.allowed {
					t.Fatalf("algorithm: cost %d: %+v, want allowed %v", tc.cost, want, tc.allowed)
				}
				if got.Allowed != want.Allowed || got.Reason != want.Reason {
					t.Fatalf("script: cost %d: %+v; algorithm: %+v", tc.cost, got, want)
				}
			}
		})
	}
}
