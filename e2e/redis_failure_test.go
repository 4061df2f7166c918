package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floodgate-proxy/floodgate/e2e/envoyhost"
)

// slowEveryOther puts a proxy in front of the helper that holds every other call for delay before
// passing it on: the plugin gives up on those (its timeout is shorter), while Redis still runs
// them when they arrive.
func slowEveryOther(t *testing.T, helperAddr string, delay time.Duration) string {
	t.Helper()
	target, _ := url.Parse("http://" + helperAddr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
		}
		proxy.ServeHTTP(w, r.WithContext(context.WithoutCancel(r.Context())))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// burnCPU keeps every core busy until stop is called: the host's VMs, the helper and Redis then
// answer late, as on a loaded node, without any fault injected.
func burnCPU() (stop func()) {
	var done atomic.Bool
	var wg sync.WaitGroup
	for i := 0; i < 2*runtime.GOMAXPROCS(0); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for x := uint64(1); !done.Load(); x = x*6364136223846793005 + 1442695040888963407 {
			}
		}()
	}
	return func() { done.Store(true); wg.Wait() }
}

// TestRedisFailuresStillLimit: two gateways in redis mode, one key of 20 per minute, the whole run
// inside one window, while calls fail: with failure mode local the gateways together admit at
// most 20 per gateway, with closed at most 20 in all. Without a bound of its own per proxy, local
// fallback admitted a full quota on each gateway on top of what Redis admitted.
func TestRedisFailuresStillLimit(t *testing.T) {
	const quota, gateways = 20, 2
	for _, fault := range []string{"slow helper", "starved CPU"} {
		for _, mode := range []string{"local", "closed"} {
			t.Run(fault+"/"+mode, func(t *testing.T) {
				addr, _ := helperFor(t)
				timeout := 200
				if fault == "slow helper" {
					addr = slowEveryOther(t, addr, 3*time.Duration(timeout)*time.Millisecond)
				} else {
					timeout = 5 // what a starved host misses often
				}
				cfg := `{"redis":{"cluster":"floodgate-redis-helper","token":"` + helperToken + `","timeout_ms":` + strconv.Itoa(timeout) + `,"breaker":{"failures":1000}},
					"policies":[{"name":"p","key":[{"type":"client_ip"}],"limits":[{"requests":"20/m"}],"backend":"redis","failure_mode":"` + mode + `"}]}`
				hosts := make([]*envoyhost.Host, gateways)
				for i := range hosts {
					hosts[i] = startHost(t, cfg, 2, withCluster(addr))
				}
				if fault == "starved CPU" {
					defer burnCPU()()
				}
				var admitted atomic.Int64
				var wg sync.WaitGroup
				for _, h := range hosts {
					wg.Add(1)
					go func() {
						defer wg.Done()
						admitted.Add(hammer(t, h, 4, 120, func(int) string { return "198.51.100.20:1" }))
					}()
				}
				wg.Wait()
				var failures int64
				for _, h := range hosts {
					failures += metric(t, h, "floodgate.p.errors")
				}
				t.Logf("%s, failure mode %s: %d admitted of %d, %d decisions failed", fault, mode, admitted.Load(), gateways*120, failures)
				if fault == "slow helper" && failures == 0 {
					t.Fatal("no decision failed: the test did not exercise the failure mode")
				}
				bound := int64(quota * gateways)
				if mode == "closed" {
					bound = quota
				}
				if admitted.Load() > bound {
					t.Fatalf("%d admitted, more than %d", admitted.Load(), bound)
				}
			})
		}
	}
}
