package e2e

import (
	"bytes"
	"context"
	"io"
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
	"github.com/floodgate-proxy/floodgate/internal/testlog"
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

// TestRedisLateCallsCountNothing: a call the plugin gave up on still reaches Redis later. With
// failure mode closed its request was answered 503, so it must not use the key's quota: the
// script refuses it after its deadline (this proxy's give-up time on Redis's clock). Without the
// deadline, the 9 late calls ate the quota and only about half of the 10 answered calls passed.
// Only the held calls may time out: a run where another did (a busy machine) is reported and run
// again (withoutErrors), and the wait for the held calls is bounded.
func TestRedisLateCallsCountNothing(t *testing.T) {
	withoutErrors(t, func(int) int64 { return lateCallsCountNothing(t) })
}

// lateCallsCountNothing is one run of TestRedisLateCallsCountNothing: it returns how many calls
// timed out that were not held, and asserts the rest only of a run without such.
func lateCallsCountNothing(t *testing.T) (unexpected int64) {
	t.Helper()
	helper, _ := helperFor(t)
	target, _ := url.Parse("http://" + helper)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = testlog.StdLogger(t)
	const timeout = 500 * time.Millisecond
	var decisions, held atomic.Int64
	late := make(chan struct{}, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if bytes.HasPrefix(body, []byte(`["EVALSHA"`)) && decisions.Add(1)%2 == 0 {
			held.Add(1)
			time.Sleep(2 * timeout) // the plugin has given up: its request was answered 503
			defer func() { late <- struct{}{} }()
		}
		proxy.ServeHTTP(w, r.WithContext(context.WithoutCancel(r.Context())))
	}))
	t.Cleanup(srv.Close)
	cfg := `{"redis":{"cluster":"floodgate-redis-helper","token":"` + helperToken + `","timeout_ms":` + strconv.Itoa(int(timeout.Milliseconds())) + `,"breaker":{"failures":1000}},
		"policies":[{"name":"p","key":[{"type":"client_ip"}],"limits":[{"requests":"10/m"}],"backend":"redis","failure_mode":"closed"}]}`
	h := startHost(t, cfg, 1, withCluster(strings.TrimPrefix(srv.URL, "http://")))
	admitted, unavailable := 0, 0
	for i := 0; i < 20; i++ {
		switch send(t, h, "198.51.100.30:1").status {
		case 200:
			admitted++
		case 503:
			unavailable++
		}
	}
	for i := int64(0); i < held.Load(); i++ {
		select {
		case <-late: // a held call has reached Redis
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d held calls reached Redis within 30 s", i, held.Load())
		}
	}
	var timedOut int64
	for _, c := range decisionCalls(h) {
		if c.Status == 504 {
			timedOut++
		}
	}
	if timedOut != held.Load() {
		h.Close(context.Background())
		return timedOut - held.Load()
	}
	after := send(t, h, "198.51.100.30:1") // answered in time (odd decision)
	t.Logf("%d admitted, %d answered 503 (their calls reached Redis late), then %d %q", admitted, unavailable, after.status, after.header("ratelimit"))
	// Requests alternate: answered in time, held. The 20th finds the quota used on this proxy
	// and is rejected without a call.
	if unavailable != 9 {
		t.Fatalf("%d requests answered 503, want the 9 whose calls were held", unavailable)
	}
	if admitted != 10 {
		t.Fatalf("%d of the 10 answered calls admitted, want 10: the late calls used quota", admitted)
	}
	return 0
}
