package e2e

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floodgate-proxy/floodgate/e2e/envoyhost"
	"github.com/floodgate-proxy/floodgate/internal/redishelper"
	"github.com/floodgate-proxy/floodgate/internal/redistest"
	"github.com/floodgate-proxy/floodgate/internal/testlog"
	"github.com/redis/go-redis/v9"
)

// helperToken is the bearer token of the tests' helper (the plugin configurations carry it).
const helperToken = "7c1f9e3a5b0d2846e8a4c6f0b3d5e7a9"

// helperFor starts a redis-server and the helper in front of it; it returns the helper's address.
func helperFor(t testing.TB) (helperAddr string, stopRedis func()) {
	t.Helper()
	srv, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(srv.Stop) }
	t.Cleanup(stop)
	return serveHelper(t, srv), stop
}

// serveHelper serves the helper in front of srv, connected as the floodgate ACL user README
// gives, and returns its address.
func serveHelper(t testing.TB, srv *redistest.Server) string {
	t.Helper()
	const password = "5d7f9b1c3e0a2468ace13579bdf02468"
	if err := srv.SetUser("floodgate", redishelper.ACLRules(password, "floodgate")...); err != nil {
		t.Fatal(err)
	}
	// A down Redis refuses connections at once; the budgets only bound a slow answer, which a
	// busy test machine gives (a batch of 100 000 state records takes 100 ms unloaded).
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{srv.Addr}, Username: "floodgate", Password: password,
		Protocol: 2, DialTimeout: 100 * time.Millisecond, ReadTimeout: 2 * time.Second, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	h, err := redishelper.New(client, redishelper.Options{Token: helperToken, Timeout: 2 * time.Second, Logger: testlog.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return strings.TrimPrefix(hs.URL, "http://")
}

// decisionCalls are the calls h made to the helper, without the PINGs of the check at load
// (plugin/probe.go).
func decisionCalls(h *envoyhost.Host) []envoyhost.HTTPCallRecord {
	var out []envoyhost.HTTPCallRecord
	for _, c := range h.HTTPCalls() {
		if string(c.Body) != `["PING"]` {
			out = append(out, c)
		}
	}
	return out
}

func redisConfig(fields string) string {
	return `{"redis":{"cluster":"floodgate-redis-helper","token":"7c1f9e3a5b0d2846e8a4c6f0b3d5e7a9","timeout_ms":500,"breaker":{"failures":3,"cooldown_ms":60000}},
		"policies":[{"name":"p","key":[{"type":"client_ip"}],"limits":[{"requests":"50/m"}],"backend":"redis"` + fields + `}]}`
}

func withCluster(addr string) func(*envoyhost.Config) {
	return func(c *envoyhost.Config) { c.Clusters = map[string]string{"floodgate-redis-helper": addr} }
}

// TestRedisExactAcrossGateways: two independent gateways (separate hosts, separate shared data),
// several workers each, one Redis behind the helper: exactly Q pass for one key. A decision that
// timed out is decided by the failure mode, which exactness does not cover: calls may take 3 s
// here, and a run with errors anyway is reported and run again (withoutErrors).
func TestRedisExactAcrossGateways(t *testing.T) {
	cfg := strings.Replace(redisConfig(""), `"timeout_ms":500`, `"timeout_ms":3000`, 1)
	var a, b *envoyhost.Host
	var got [2]int64
	withoutErrors(t, func(int) int64 {
		addr, _ := helperFor(t)
		a = startHost(t, cfg, 2, withCluster(addr))
		b = startHost(t, cfg, 2, withCluster(addr))
		var wg sync.WaitGroup
		for i, h := range []*envoyhost.Host{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i] = hammer(t, h, 4, 150, func(int) string { return "198.51.100.7:1000" })
			}()
		}
		wg.Wait()
		errs := errorsOf(t, a, b)
		if errs > 0 {
			logErrors(t, a, b)
			a.Close(context.Background())
			b.Close(context.Background())
		}
		return errs
	})
	if got[0]+got[1] != 50 {
		t.Fatalf("gateways admitted %d + %d of 300, want exactly 50", got[0], got[1])
	}
	// The first call of each worker falls back from EVALSHA to EVAL once (NOSCRIPT), then EVALSHA.
	calls := append(decisionCalls(a), decisionCalls(b)...)
	if len(calls) < 300 || calls[0].Cluster != "floodgate-redis-helper" || calls[0].TimeoutMs != 3000 {
		t.Fatalf("%d calls, first %+v", len(calls), calls[0])
	}
	a200 := send(t, a, "198.51.100.8:1")
	if a200.status != 200 || a200.header("ratelimit") != `"p";r=49;t=60` {
		t.Fatalf("a new client: %d %v", a200.status, a200.headers)
	}
}

// TestRedisFailureModes: with the helper's Redis stopped, requests keep flowing per the failure
// mode within the timeout, the breaker opens after 3 failures and calls stop.
func TestRedisFailureModes(t *testing.T) {
	tests := []struct {
		mode       string
		wantStatus int
	}{
		{"open", 200}, {"closed", 503}, {"local", 200},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			addr, stopRedis := helperFor(t)
			h := startHost(t, redisConfig(`,"failure_mode":"`+tc.mode+`"`), 2, withCluster(addr))
			if a := send(t, h, "203.0.113.1:1"); a.status != 200 {
				t.Fatalf("healthy: %d", a.status)
			}
			stopRedis()
			for i := 0; i < 10; i++ {
				start := time.Now()
				a := send(t, h, "203.0.113.1:1")
				if a.status != tc.wantStatus {
					t.Fatalf("request %d with redis down: %d, want %d", i, a.status, tc.wantStatus)
				}
				if took := time.Since(start); took > time.Second {
					t.Fatalf("request %d took %v with a 500 ms timeout", i, took)
				}
			}
			if n := metric(t, h, "floodgate.redis.breaker_opened"); n != 1 {
				t.Fatalf("breaker opened %d times, want 1", n)
			}
			if calls := len(decisionCalls(h)); calls > 1+3+1 {
				t.Fatalf("%d calls: the open breaker must stop them", calls)
			}
			if tc.mode == "local" && metric(t, h, "floodgate.p.fallbacks") == 0 {
				t.Fatal("no local fallback counted")
			}
		})
	}
}

// TestRedisHelperDownAndGarbage: an unreachable helper (503 from the host) and garbage answers are
// failures like any other.
func TestRedisHelperDownAndGarbage(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	down := l.Addr().String()
	l.Close()
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"result":"not what you wanted"}`))
	}))
	defer garbage.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	for name, addr := range map[string]string{"down": down, "garbage": strings.TrimPrefix(garbage.URL, "http://"),
		"slower than the timeout": strings.TrimPrefix(slow.URL, "http://")} {
		t.Run(name, func(t *testing.T) {
			h := startHost(t, redisConfig(`,"failure_mode":"closed"`), 1, withCluster(addr))
			for i := 0; i < 5; i++ {
				start := time.Now()
				if a := send(t, h, "203.0.113.9:1"); a.status != 503 {
					t.Fatalf("request %d: %d, want 503 (fail closed)", i, a.status)
				}
				if took := time.Since(start); took > time.Second {
					t.Fatalf("request %d took %v: the 500 ms timeout must bound it", i, took)
				}
			}
			if metric(t, h, "floodgate.p.errors") != 5 || metric(t, h, "floodgate.redis.breaker_opened") != 1 {
				t.Fatalf("errors %d breaker %d", metric(t, h, "floodgate.p.errors"), metric(t, h, "floodgate.redis.breaker_opened"))
			}
		})
	}
}

// TestRedisBreakerCloses: the breaker opens on failures and, after its cool-down, lets calls
// through again once the helper has recovered.
func TestRedisBreakerCloses(t *testing.T) {
	addr, _ := helperFor(t)
	var broken atomic.Bool
	target, _ := url.Parse("http://" + addr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer flaky.Close()
	cfg := `{"redis":{"cluster":"floodgate-redis-helper","token":"7c1f9e3a5b0d2846e8a4c6f0b3d5e7a9","timeout_ms":500,"breaker":{"failures":2,"cooldown_ms":300}},
		"policies":[{"name":"p","key":[{"type":"client_ip"}],"limits":[{"requests":"3/m"}],"backend":"redis","failure_mode":"open"}]}`
	h := startHost(t, cfg, 1, withCluster(strings.TrimPrefix(flaky.URL, "http://")))
	broken.Store(true)
	for i := 0; i < 4; i++ {
		send(t, h, "192.0.2.50:1") // admitted by fail-open
	}
	if n := metric(t, h, "floodgate.redis.breaker_opened"); n != 1 {
		t.Fatalf("breaker opened %d times", n)
	}
	callsWhileOpen := len(decisionCalls(h))
	broken.Store(false)
	time.Sleep(400 * time.Millisecond) // past the cool-down
	for i, want := range []int{200, 200, 200, 429} {
		if a := send(t, h, "192.0.2.51:1"); a.status != want {
			t.Fatalf("after recovery, request %d: %d, want %d (Redis decides again)", i, a.status, want)
		}
	}
	if len(decisionCalls(h)) <= callsWhileOpen {
		t.Fatal("no call after the cool-down: the breaker did not close")
	}
}

// TestRedisPausedRequestsKeepTheirKeys: two requests with different keys are paused on one worker
// at the same time; when the helper fails, each falls back to local limiting on its own key.
func TestRedisPausedRequestsKeepTheirKeys(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond)
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer slow.Close()
	cfg := `{"redis":{"cluster":"floodgate-redis-helper","token":"7c1f9e3a5b0d2846e8a4c6f0b3d5e7a9","timeout_ms":1000,"breaker":{"failures":100}},
		"policies":[{"name":"p","key":[{"type":"client_ip"}],"limits":[{"requests":"1/m"}],"backend":"redis","failure_mode":"local"}]}`
	h := startHost(t, cfg, 1, withCluster(strings.TrimPrefix(slow.URL, "http://")))
	var wg sync.WaitGroup
	status := make([]int, 2)
	for i, src := range []string{"192.0.2.60:1", "192.0.2.61:1"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status[i] = send(t, h, src).status
		}()
	}
	wg.Wait()
	if status[0] != 200 || status[1] != 200 {
		t.Fatalf("two clients' first requests: %v, want both admitted on their own keys", status)
	}
	for _, src := range []string{"192.0.2.60:1", "192.0.2.61:1"} {
		if a := send(t, h, src); a.status != 429 {
			t.Fatalf("%s second request: %d, want 429 (its own key was counted)", src, a.status)
		}
	}
}
