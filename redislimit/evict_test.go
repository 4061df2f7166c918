package redislimit

import (
	"context"
	"testing"

	"github.com/floodgate-proxy/floodgate/algorithm"
)

// TestEvictedStateStartsAfresh: Redis may evict a key's state under maxmemory (the shipped
// configuration evicts the least frequently used). The next call finds no state and starts a
// fresh window, in a decision and in a lease alike: nothing fails, nothing goes negative.
func TestEvictedStateStartsAfresh(t *testing.T) {
	ctx := context.Background()
	for _, s := range []algorithm.Strategy{algorithm.Absolute, algorithm.Suppressed} {
		t.Run(s.String(), func(t *testing.T) {
			p, err := algorithm.NewPolicy(s, 1, limit(t, 10, 1, 100))
			if err != nil {
				t.Fatal(err)
			}
			key := "{fg:evict:" + s.String() + "}"
			const t0 = int64(1_700_000_000_000)
			for i := range 10 {
				if res := evalLua(t, key, p, t0+int64(i), 1, 0.99); !res.Allowed {
					t.Fatalf("request %d refused", i)
				}
			}
			if res := evalLua(t, key, p, t0+10, 1, 0.99); res.Allowed {
				t.Fatal("the 11th request was admitted")
			}
			rdb.Del(ctx, key) // what an eviction does
			res := evalLua(t, key, p, t0+11, 1, 0.99)
			if !res.Allowed || res.Remaining != 9 || res.Reset {
				t.Fatalf("after the eviction: %+v, want a fresh window (admitted, 9 left)", res)
			}

			// A lease that gives back a reservation and reports admissions made against a state
			// that is gone: the admissions are counted, the release finds nothing to free.
			rdb.Del(ctx, key)
			g := leaseLua(t, key, p, t0+30, Lease{Release: 5, ReleaseAtMs: t0 + 5, Used: 3, UsedAtMs: t0 + 25, Want: 4})
			if g.Units != 4 || g.Remaining != 10-3-4 {
				t.Fatalf("lease after the eviction: %+v, want 4 granted and 3 left", g)
			}
		})
	}
}
