package e2e

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/floodgate-proxy/floodgate/e2e/envoyhost"
	"github.com/floodgate-proxy/floodgate/internal/bootstrap"
	"google.golang.org/protobuf/types/known/structpb"
)

// edgeGateway is plugin.wasm behind the gateway's front: Envoy's connection manager (the model in
// envoyhost) runs before it, and an upstream records what reaches it.
type edgeGateway struct {
	h     *envoyhost.Host
	front *envoyhost.Front

	mu       sync.Mutex
	upstream http.Header // the headers of the last request that reached the upstream
}

func startEdge(t *testing.T, config string, cm bootstrap.ConnManager) *edgeGateway {
	t.Helper()
	g := &edgeGateway{h: startHost(t, config, 2)}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.upstream = r.Header.Clone()
		g.mu.Unlock()
	}))
	t.Cleanup(up.Close)
	g.front = &envoyhost.Front{Host: g.h, Upstream: strings.TrimPrefix(up.URL, "http://"), ConnManager: cm}
	return g
}

// edgeRequest is one request as it reaches the gateway.
type edgeRequest struct {
	peer    string      // the connection's remote address
	headers [][2]string // in order; a name given twice is sent twice
	status  int         // the answer's status
}

// send sends r through the front; it returns the answer and what the upstream saw of it.
func (g *edgeGateway) send(t *testing.T, r edgeRequest) (*httptest.ResponseRecorder, http.Header) {
	t.Helper()
	req := httptest.NewRequest("GET", "http://api.example.com/api/items", nil)
	req.RemoteAddr = r.peer
	for _, kv := range r.headers {
		req.Header.Add(kv[0], kv[1])
	}
	g.mu.Lock()
	g.upstream = nil
	g.mu.Unlock()
	w := httptest.NewRecorder()
	g.front.ServeHTTP(w, req)
	g.mu.Lock()
	defer g.mu.Unlock()
	return w, g.upstream
}

// bearer returns an unsigned JWT carrying payload.
func bearer(payload string) string {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	return "Bearer " + enc(`{"alg":"none"}`) + "." + enc(payload) + ".x"
}

func xff(values ...string) [][2]string {
	var h [][2]string
	for _, v := range values {
		h = append(h, [2]string{"X-Forwarded-For", v})
	}
	return h
}

// TestClientIPBehindProxies: whatever the connection manager's settings, each client keeps its
// own key and cannot change it by forging X-Forwarded-For. On main, one load balancer in front
// made its clients 1.1.1.1, 2.2.2.2 and 3.3.3.3 share one key (200, 429, 429): the plugin counted
// hops without the address Envoy had appended, and the gateway neither appended the peer nor set
// source.address to Envoy's trusted client address, nor merged X-Forwarded-For headers.
func TestClientIPBehindProxies(t *testing.T) {
	const lb, lb2 = "10.9.9.9:40000", "10.8.8.8"
	oneProxy := []edgeRequest{
		{peer: lb, headers: xff("1.1.1.1"), status: 200},
		{peer: lb, headers: xff("2.2.2.2"), status: 200},
		{peer: lb, headers: xff("3.3.3.3"), status: 200},
		{peer: lb, headers: xff("9.9.9.9, 1.1.1.1"), status: 429}, // 1.1.1.1 forging an address
	}
	twoProxies := []edgeRequest{
		{peer: lb, headers: xff("1.1.1.1, " + lb2), status: 200},
		{peer: lb, headers: xff("2.2.2.2, " + lb2), status: 200},
		{peer: lb, headers: xff("6.6.6.6, 1.1.1.1, " + lb2), status: 429},
	}
	tests := []struct {
		name     string
		cm       bootstrap.ConnManager
		key      string
		requests []edgeRequest
		// What the first request's upstream sees: X-Forwarded-For and x-envoy-external-address.
		upstreamXFF, external string
	}{
		{name: "no proxy in front: the peer", cm: bootstrap.ConnManager{UseRemoteAddress: true}, key: `{"type":"client_ip"}`,
			requests: []edgeRequest{
				{peer: "1.1.1.1:5000", status: 200},
				{peer: "1.1.1.1:5001", headers: xff("9.9.9.9"), status: 429},
				{peer: "2.2.2.2:5000", headers: xff("1.1.1.1"), status: 200},
			}, upstreamXFF: "1.1.1.1", external: "1.1.1.1"},
		{name: "one trusted proxy, Envoy counts it (xff_num_trusted_hops 1)", cm: bootstrap.ConnManager{UseRemoteAddress: true, XffNumTrustedHops: 1},
			key: `{"type":"client_ip"}`, requests: oneProxy, upstreamXFF: "1.1.1.1,10.9.9.9", external: "1.1.1.1"},
		{name: "one trusted proxy, the plugin counts it (trusted_hops 1)", cm: bootstrap.ConnManager{UseRemoteAddress: true},
			key: `{"type":"client_ip","trusted_hops":1}`, requests: oneProxy, upstreamXFF: "1.1.1.1,10.9.9.9", external: "10.9.9.9"},
		{name: "two trusted proxies, Envoy counts them", cm: bootstrap.ConnManager{UseRemoteAddress: true, XffNumTrustedHops: 2},
			key: `{"type":"client_ip"}`, requests: twoProxies, upstreamXFF: "1.1.1.1, 10.8.8.8,10.9.9.9", external: "1.1.1.1"},
		{name: "two trusted proxies, the plugin counts them", cm: bootstrap.ConnManager{UseRemoteAddress: true},
			key: `{"type":"client_ip","trusted_hops":2}`, requests: twoProxies, upstreamXFF: "1.1.1.1, 10.8.8.8,10.9.9.9", external: "10.9.9.9"},
		{name: "duplicate X-Forwarded-For headers are one list", cm: bootstrap.ConnManager{UseRemoteAddress: true},
			key: `{"type":"client_ip","trusted_hops":1}`, requests: []edgeRequest{
				{peer: lb, headers: xff("9.9.9.9", "1.1.1.1"), status: 200},
				{peer: lb, headers: xff("8.8.8.8", "1.1.1.1"), status: 429},
				{peer: lb, headers: xff("1.1.1.1", "2.2.2.2"), status: 200},
			}, upstreamXFF: "9.9.9.9,1.1.1.1,10.9.9.9", external: "10.9.9.9"},
		{name: "Envoy does not append (skip_xff_append)", cm: bootstrap.ConnManager{UseRemoteAddress: true, SkipXffAppend: true},
			key: `{"type":"client_ip","trusted_hops":1,"skip_xff_append":true}`, requests: oneProxy, upstreamXFF: "1.1.1.1", external: "10.9.9.9"},
		{name: "an edge proxy in front appended (use_remote_address false)", cm: bootstrap.ConnManager{},
			key: `{"type":"client_ip"}`, requests: oneProxy, upstreamXFF: "1.1.1.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := startEdge(t, configOf(policy("per-client", `,"key":[`+tc.key+`],"limits":[{"requests":"1/m"}]`)), tc.cm)
			for i, r := range tc.requests {
				w, up := g.send(t, r)
				if w.Code != r.status {
					t.Fatalf("request %d from %s with %v: %d, want %d", i, r.peer, r.headers, w.Code, r.status)
				}
				if i == 0 && (up.Get("X-Forwarded-For") != tc.upstreamXFF || up.Get("X-Envoy-External-Address") != tc.external) {
					t.Fatalf("the upstream saw x-forwarded-for %q, x-envoy-external-address %q; want %q, %q",
						up.Values("X-Forwarded-For"), up.Get("X-Envoy-External-Address"), tc.upstreamXFF, tc.external)
				}
			}
		})
	}
}

// verified is the dynamic metadata Istio's jwt_authn leaves when it verified a token for sub
// (payload_in_metadata "payload"); the token itself is removed from the request (forward: false).
func verified(r *http.Request) *corev3.Metadata {
	sub := r.Header.Get("x-test-verified-sub") // what the test says jwt_authn verified
	if sub == "" {
		return nil
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.filters.http.jwt_authn": {Fields: map[string]*structpb.Value{
		"payload": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"sub": structpb.NewStringValue(sub), "iss": structpb.NewStringValue("https://issuer.example.com")}})}}}}
}

// TestVerifiedClaimBehindJWTAuthn: behind Istio's RequestAuthentication no token reaches the
// plugin; the claim comes from the payload jwt_authn verified. On main a jwt_claim policy read
// only the authorization header, so it skipped every request.
func TestVerifiedClaimBehindJWTAuthn(t *testing.T) {
	g := startEdge(t, configOf(policy("per-user", `,"key":[{"type":"jwt_claim","claim":"sub","metadata":"payload"}],"limits":[{"requests":"2/m"}]`)),
		bootstrap.ConnManager{UseRemoteAddress: true})
	g.front.Metadata = verified
	sub := func(s string) [][2]string { return [][2]string{{"x-test-verified-sub", s}} }
	for i, r := range []edgeRequest{
		{peer: "1.1.1.1:1", headers: sub("alice"), status: 200},
		{peer: "2.2.2.2:1", headers: sub("alice"), status: 200},
		{peer: "3.3.3.3:1", headers: sub("alice"), status: 429}, // alice's quota, whatever her address
		{peer: "3.3.3.3:1", headers: sub("bob"), status: 200},
	} {
		if w, _ := g.send(t, r); w.Code != r.status {
			t.Fatalf("request %d: %d, want %d", i, w.Code, r.status)
		}
	}
	if n := metric(t, g.h, "floodgate.per-user.missing_key"); n != 0 {
		t.Fatalf("missing_key %d for verified requests", n)
	}
}

// TestNoSilentEscape: under the default missing_key, a request whose credential is missing or
// does not decode counts under its client IP with the policy's limits. On main the default was
// to skip such requests: garbage made a client unlimited.
func TestNoSilentEscape(t *testing.T) {
	const cfg = `{"shared_data":{"slots":1024},"policies":[
		{"name":"per-user","key":[{"type":"jwt_claim","claim":"sub","header":"authorization"}],"limits":[{"requests":"3/m"}]},
		{"name":"per-key","key":[{"type":"header","name":"x-api-key"},{"type":"query","name":"tenant"}],"limits":[{"requests":"3/m"}]}]}`
	g := startEdge(t, cfg, bootstrap.ConnManager{UseRemoteAddress: true})
	garbage := []string{"Bearer garbage", "Bearer a.b", "Bearer a.!!!.c", "Bearer " + strings.TrimPrefix(bearer(`not json`), "Bearer "),
		bearer(`{"no":"sub"}`), "Basic dXNlcjpwYXNz", ""}
	passed := 0
	for i, token := range garbage {
		var h [][2]string
		if token != "" {
			h = append(h, [2]string{"Authorization", token})
		}
		if w, _ := g.send(t, edgeRequest{peer: "203.0.113.7:1000", headers: h}); w.Code == 200 {
			passed++
		} else if w.Code != 429 || i < 3 {
			t.Fatalf("request %d: %d", i, w.Code)
		}
	}
	if passed != 3 {
		t.Fatalf("%d of %d requests with missing or malformed credentials passed, want the client IP's 3", passed, len(garbage))
	}
	for _, name := range []string{"per-user", "per-key"} {
		if n := metric(t, g.h, "floodgate."+name+".missing_key"); n == 0 {
			t.Errorf("%s counted no missing key", name)
		}
	}
	if w, _ := g.send(t, edgeRequest{peer: "203.0.113.8:1000"}); w.Code != 200 {
		t.Fatalf("another client: %d", w.Code)
	}
}

// TestProbeMakesMisconfigurationLoud: at load the plugin PINGs the helper through redis.cluster.
// An unknown cluster, a refused token and an unreachable helper are each logged at critical level
// and counted, and the PING is retried every second until the helper answers. On main all three
// were accepted silently: requests passed without rate-limit headers.
func TestProbeMakesMisconfigurationLoud(t *testing.T) {
	helper, _ := helperFor(t)
	var down atomic.Bool
	target, _ := url.Parse("http://" + helper)
	proxy := httputil.NewSingleHostReverseProxy(target)
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "no healthy upstream", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer flaky.Close()
	tests := []struct {
		name, token string
		clusters    map[string]string
		down        bool
		log, metric string // the critical line and its counter; "" for a healthy helper
	}{
		{name: "healthy", token: helperToken, clusters: map[string]string{"floodgate-redis-helper": helper}},
		{name: "unknown cluster", token: helperToken, clusters: map[string]string{"floodgate-redis-helpr": helper},
			log: `redis.cluster "floodgate-redis-helper" is not a cluster of this proxy`, metric: "floodgate.redis.probe_unknown_cluster"},
		{name: "wrong token", token: "wrong", clusters: map[string]string{"floodgate-redis-helper": helper},
			log: "redis helper floodgate-redis-helper refused the token (answered 401)", metric: "floodgate.redis.probe_refused"},
		{name: "helper down, then up", token: helperToken, clusters: map[string]string{"floodgate-redis-helper": strings.TrimPrefix(flaky.URL, "http://")}, down: true,
			log: "redis helper floodgate-redis-helper is unreachable (answered 503", metric: "floodgate.redis.probe_unreachable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			down.Store(tc.down)
			cfg := `{"redis":{"cluster":"floodgate-redis-helper","token":"` + tc.token + `","timeout_ms":500},
				"policies":[{"name":"p","key":[{"type":"client_ip"}],"limits":[{"requests":"50/m"}],"backend":"redis"}]}`
			h := startHost(t, cfg, 2, func(c *envoyhost.Config) { c.Clusters = tc.clusters })
			ready := func() bool { return hasLog(h, 2, "floodgate-redis-helper answered PING: ready") }
			if tc.log == "" {
				waitFor(t, 10*time.Second, "the helper's answer to be logged", ready)
				if lines := logsAt(h, 5); len(lines) > 0 {
					t.Fatalf("critical lines for a healthy helper: %q", lines)
				}
				return
			}
			waitFor(t, 10*time.Second, "a critical line and the metric", func() bool {
				return hasLog(h, 5, tc.log) && metric(t, h, tc.metric) > 0
			})
			if ready() {
				t.Fatal("a misconfigured helper was reported ready")
			}
			// Retried every second on each worker until the helper answers.
			n := metric(t, h, tc.metric)
			waitFor(t, 10*time.Second, "a retry", func() bool { return metric(t, h, tc.metric) > n })
			if tc.down {
				down.Store(false)
				waitFor(t, 10*time.Second, "the helper, now up, to be reported ready", ready)
			}
		})
	}
}

// hasLog tells whether a line at level or above contains s.
func hasLog(h *envoyhost.Host, level uint32, s string) bool {
	for _, l := range h.Logs() {
		if l.Level >= level && strings.Contains(l.Msg, s) {
			return true
		}
	}
	return false
}

func logsAt(h *envoyhost.Host, level uint32) []string {
	var out []string
	for _, l := range h.Logs() {
		if l.Level >= level {
			out = append(out, l.Msg)
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline (generous: it bounds a failing test, not a
// passing one) passes.
func waitFor(t *testing.T, deadline time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(deadline); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("waited %v for %s", deadline, what)
		}
	}
}

// TestConfigurationRefusedLoudly: a configuration the plugin refuses is rejected at load (the
// canary's configure fails, Envoy NACKs) with every problem logged at critical level.
func TestConfigurationRefusedLoudly(t *testing.T) {
	_, err := envoyhost.New(t.Context(), envoyhost.Config{Wasm: pluginWasm(t), VMs: 1,
		PluginConfig: []byte(`{"policies":[{"name":"p","key":[{"type":"jwt_claim","claim":"sub"}],"limits":[{"rate":1}]}]}`)})
	if err == nil || !strings.Contains(err.Error(), `floodgate: invalid configuration: policies[0].key[0]: needs "metadata"`) {
		t.Fatalf("err = %v", err)
	}
}

// TestPrometheusStatsOfThePlugin: the gateway's admin endpoint gives the plugin's counters in
// Envoy's Prometheus format.
func TestPrometheusStatsOfThePlugin(t *testing.T) {
	h := startHost(t, configOf(policy("per-client", `,"key":[{"type":"client_ip"}],"limits":[{"requests":"2/m"}]`)), 2)
	for i := 0; i < 3; i++ {
		send(t, h, "192.0.2.9:1")
	}
	admin := httptest.NewServer(h.AdminHandler())
	defer admin.Close()
	res, err := http.Get(admin.URL + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{"# TYPE floodgate_per_client_allowed counter\nfloodgate_per_client_allowed{} 2\n\n",
		"# TYPE floodgate_per_client_rejected counter\nfloodgate_per_client_rejected{} 1\n\n"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("%q not in\n%s", want, body)
		}
	}
}
