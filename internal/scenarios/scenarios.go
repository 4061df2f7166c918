// Package scenarios holds behaviour tests of the plugin that run twice: natively under the SDK's
// proxytest emulator (plugin package tests: fast, race detector, coverage) and as the real
// plugin.wasm in the Envoy-faithful wazero host (e2e tests). Each side supplies a Gateway.
package scenarios

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

// Gateway runs requests through one loaded plugin configuration.
type Gateway interface {
	// Send runs one request from source ("ip:port"); a request that reaches the upstream is
	// answered upstream (a status), and status is then that one.
	Send(t testing.TB, source string, headers [][2]string, upstream int) (status int, respHeaders [][2]string, body string)
	// Metric returns a counter by name (without Envoy's wasmcustom. prefix).
	Metric(t testing.TB, name string) int64
}

// Step is one request and what its answer must be.
type Step struct {
	Source  string
	Headers [][2]string
	// Repeat sends the request this many times (default 1), all with the same expectations.
	Repeat int
	// Upstream is the upstream's status for a request that reaches it (default 200).
	Upstream int
	Status   int
	// Want lists headers the answer must carry ("" = must be absent).
	Want map[string]string
	// Body, when set, is the exact body of a local answer.
	Body string
}

// Scenario is a configuration and a sequence of requests.
type Scenario struct {
	Name    string
	Config  string
	Steps   []Step
	Metrics map[string]int64 // counters after the last step
}

func pol(fields string) string { return `{"shared_data":{"slots":1024},"policies":[` + fields + `]}` }

// All are the scenarios. They use windows of a minute or more so that the run fits in one window
// on the real clock of the wazero host.
var All = []Scenario{
	{
		Name:   "absolute admits exactly the quota, then 429 with Retry-After",
		Config: pol(`{"name":"p","key":[{"type":"client_ip"}],"limits":[{"requests":"3/m"}],"response":{"headers":"both","body":"slow down"}}`),
		Steps: []Step{
			{Source: "10.0.0.1:1", Status: 200, Want: map[string]string{"ratelimit-policy": `"p";q=3;w=60`, "ratelimit": `"p";r=2;t=60`, "x-ratelimit-remaining": "2"}},
			{Source: "10.0.0.1:2", Repeat: 2, Status: 200},
			{Source: "10.0.0.1:3", Status: 429, Body: "slow down", Want: map[string]string{"retry-after": "60", "x-ratelimit-remaining": "0", "content-type": "text/plain"}},
		},
		Metrics: map[string]int64{"floodgate.p.allowed": 3, "floodgate.p.rejected": 1},
	},
	{
		Name:   "keys are isolated",
		Config: pol(`{"name":"p","key":[{"type":"client_ip"}],"limits":[{"requests":"1/m"}]}`),
		Steps: []Step{
			{Source: "10.0.0.1:1", Status: 200}, {Source: "10.0.0.2:1", Status: 200},
			{Source: "10.0.0.1:1", Status: 429}, {Source: "10.0.0.2:1", Status: 429}, {Source: "10.0.0.3:1", Status: 200},
		},
	},
	{
		Name:   "several limits: the tightest one rejects, nothing is counted",
		Config: pol(`{"name":"p","key":[{"type":"constant","value":"all"}],"limits":[{"requests":"100/m"},{"requests":"2/h"}],"response":{"headers":"legacy"}}`),
		Steps: []Step{
			{Source: "10.0.0.1:1", Status: 200, Want: map[string]string{"x-ratelimit-limit": "2", "x-ratelimit-remaining": "1", "ratelimit": ""}},
			{Source: "10.0.0.1:1", Status: 200},
			{Source: "10.0.0.1:1", Status: 429, Want: map[string]string{"retry-after": "3600", "x-ratelimit-limit": "2"}},
		},
	},
	{
		Name:   "shadow mode reports but never rejects",
		Config: pol(`{"name":"dry","key":[{"type":"client_ip"}],"limits":[{"requests":"1/m"}],"shadow":true}`),
		Steps: []Step{
			{Source: "10.0.0.1:1", Status: 200},
			{Source: "10.0.0.1:1", Repeat: 3, Status: 200, Want: map[string]string{"ratelimit": `"dry";r=0;t=60`}},
		},
		Metrics: map[string]int64{"floodgate.dry.allowed": 1, "floodgate.dry.shadow_rejected": 3, "floodgate.dry.rejected": 0},
	},
	{
		Name: "match, missing key skipped or falling back",
		Config: pol(`{"name":"keyed","match":{"path":{"prefix":"/api/"}},"key":[{"type":"header","name":"x-api-key"}],"missing_key":{"action":"skip"},"limits":[{"requests":"1/m"}]},
			{"name":"anon","key":[{"type":"header","name":"x-user"}],"missing_key":{"action":"fallback","value":"anonymous"},"limits":[{"requests":"2/m"}]}`),
		Steps: []Step{
			{Source: "10.0.0.1:1", Status: 200, Want: map[string]string{"ratelimit-policy": `"anon";q=2;w=60`}},
			{Source: "10.0.0.2:1", Status: 200},
			{Source: "10.0.0.3:1", Status: 429},
			{Source: "10.0.0.4:1", Headers: [][2]string{{"x-api-key", "k"}, {"x-user", "u"}}, Status: 200,
				Want: map[string]string{"ratelimit-policy": `"keyed";q=1;w=60, "anon";q=2;w=60`}},
			{Source: "10.0.0.4:1", Headers: [][2]string{{"x-api-key", "k"}, {"x-user", "v"}}, Status: 429},
			{Source: "10.0.0.4:1", Headers: [][2]string{{":path", "/other"}, {"x-api-key", "k"}, {"x-user", "w"}}, Status: 200},
		},
	},
	{
		Name:   "a missing or malformed credential counts under the client IP by default",
		Config: pol(`{"name":"user","key":[{"type":"jwt_claim","claim":"sub","header":"authorization"}],"limits":[{"requests":"2/m"}]}`),
		Steps: []Step{
			{Source: "10.0.0.1:1", Headers: [][2]string{{"authorization", "Bearer garbage"}}, Status: 200},
			{Source: "10.0.0.1:2", Headers: [][2]string{{"authorization", "Bearer a.b"}}, Status: 200},
			{Source: "10.0.0.1:3", Headers: [][2]string{{"authorization", bearer(`not json`)}}, Status: 429},
			{Source: "10.0.0.1:4", Status: 429},
			{Source: "10.0.0.2:1", Status: 200},
			{Source: "10.0.0.1:5", Headers: [][2]string{{"authorization", bearer(`{"sub":"alice"}`)}}, Status: 200},
		},
		Metrics: map[string]int64{"floodgate.user.missing_key": 5, "floodgate.user.rejected": 2},
	},
	{
		Name: "a missing key part rejected",
		Config: pol(`{"name":"dry","shadow":true,"key":[{"type":"header","name":"x-api-key"}],"missing_key":{"action":"reject"},"limits":[{"requests":"5/m"}]},
			{"name":"p","key":[{"type":"header","name":"x-api-key"}],"missing_key":{"action":"reject","status":401},"limits":[{"requests":"5/m"}]}`),
		Steps: []Step{
			{Source: "10.0.0.1:1", Status: 401, Body: "rate limit key missing\n", Want: map[string]string{"content-type": "text/plain", "ratelimit-policy": ""}},
			{Source: "10.0.0.1:1", Headers: [][2]string{{"x-api-key", "k"}}, Status: 200},
		},
		Metrics: map[string]int64{"floodgate.p.missing_key": 1, "floodgate.p.rejected": 0, "floodgate.dry.missing_key": 1, "floodgate.dry.shadow_rejected": 1},
	},
	{
		Name: "tiers: each consumer gets its tier's quota and headers",
		Config: pol(`{"name":"plan","key":[{"type":"header","name":"x-api-key"}],
			"tiers":{"by":{"type":"header","name":"x-plan"},"values":{"gold":{"limits":[{"requests":"3/m"}]},"internal":{"unlimited":true}},
				"default":{"limits":[{"requests":"1/m"}]}},"response":{"headers":"both"}}`),
		Steps: []Step{
			{Source: "10.0.0.1:1", Headers: [][2]string{{"x-api-key", "g"}, {"x-plan", "gold"}}, Status: 200,
				Want: map[string]string{"ratelimit-policy": `"plan";q=3;w=60`, "x-ratelimit-remaining": "2"}},
			{Source: "10.0.0.1:1", Headers: [][2]string{{"x-api-key", "g"}, {"x-plan", "gold"}}, Repeat: 2, Status: 200},
			{Source: "10.0.0.1:1", Headers: [][2]string{{"x-api-key", "g"}, {"x-plan", "gold"}}, Status: 429,
				Want: map[string]string{"x-ratelimit-limit": "3", "retry-after": "60"}},
			{Source: "10.0.0.1:1", Headers: [][2]string{{"x-api-key", "f"}}, Status: 200,
				Want: map[string]string{"ratelimit-policy": `"plan";q=1;w=60`, "x-ratelimit-remaining": "0"}},
			{Source: "10.0.0.1:1", Headers: [][2]string{{"x-api-key", "f"}, {"x-plan", "platinum"}}, Status: 429,
				Want: map[string]string{"x-ratelimit-limit": "1"}},
			{Source: "10.0.0.1:1", Headers: [][2]string{{"x-api-key", "i"}, {"x-plan", "internal"}}, Repeat: 5, Status: 200,
				Want: map[string]string{"ratelimit-policy": ""}},
		},
		Metrics: map[string]int64{"floodgate.plan.allowed": 4, "floodgate.plan.rejected": 2},
	},
	{
		Name: "brute force: failed logins count, a success resets, then a block",
		Config: pol(`{"name":"login","match":{"path":{"exact":"/login"}},"key":[{"type":"client_ip"}],"limits":[{"requests":"3/10m"}],
			"count":{"on":"response","statuses":[401]},"reset":{"statuses":[200]},"block_for":"15m","response":{"headers":"both"}}`),
		Steps: []Step{
			{Source: "10.0.0.1:1", Headers: [][2]string{{":path", "/login"}}, Upstream: 401, Repeat: 2, Status: 401},
			{Source: "10.0.0.1:1", Headers: [][2]string{{":path", "/login"}}, Upstream: 200, Status: 200,
				Want: map[string]string{"x-ratelimit-remaining": "1"}},
			{Source: "10.0.0.1:1", Headers: [][2]string{{":path", "/login"}}, Upstream: 401, Status: 401,
				Want: map[string]string{"x-ratelimit-remaining": "3"}},
			{Source: "10.0.0.1:1", Headers: [][2]string{{":path", "/login"}}, Upstream: 401, Repeat: 2, Status: 401},
			{Source: "10.0.0.1:1", Headers: [][2]string{{":path", "/login"}}, Upstream: 200, Status: 429,
				Want: map[string]string{"retry-after": "900"}},
			{Source: "10.0.0.1:1", Headers: [][2]string{{":path", "/login"}}, Upstream: 200, Status: 429,
				Want: map[string]string{"retry-after": "900"}},
			{Source: "10.0.0.2:1", Headers: [][2]string{{":path", "/login"}}, Upstream: 401, Status: 401},
			{Source: "10.0.0.1:1", Headers: [][2]string{{":path", "/other"}}, Status: 200},
		},
		Metrics: map[string]int64{"floodgate.login.recorded": 6, "floodgate.login.resets": 1, "floodgate.login.rejected": 2,
			"floodgate.login.allowed": 7},
	},
	{
		Name:   "a key rejected once is blocked for block_for",
		Config: pol(`{"name":"p","key":[{"type":"client_ip"}],"limits":[{"requests":"2/m"}],"block_for":"5m"}`),
		Steps: []Step{
			{Source: "10.0.0.1:1", Repeat: 2, Status: 200},
			{Source: "10.0.0.1:1", Repeat: 2, Status: 429, Want: map[string]string{"retry-after": "300"}},
			{Source: "10.0.0.2:1", Status: 200},
		},
	},
	{
		Name: "all or nothing: a request one policy rejects consumes nothing in the others",
		Config: pol(`{"name":"per-client","key":[{"type":"client_ip"}],"limits":[{"requests":"3/m"}]},
			{"name":"scarce","match":{"path":{"prefix":"/scarce"}},"key":[{"type":"constant","value":"all"}],"limits":[{"requests":"2/m"}]}`),
		Steps: []Step{
			{Source: "10.0.0.1:1", Headers: [][2]string{{":path", "/scarce"}}, Repeat: 2, Status: 200},
			{Source: "10.0.0.1:1", Headers: [][2]string{{":path", "/scarce"}}, Status: 429},
			{Source: "10.0.0.1:1", Headers: [][2]string{{":path", "/other"}}, Status: 200,
				Want: map[string]string{"ratelimit": `"per-client";r=0;t=60`}},
			{Source: "10.0.0.1:1", Headers: [][2]string{{":path", "/other"}}, Status: 429},
		},
		Metrics: map[string]int64{"floodgate.per-client.allowed": 4, "floodgate.per-client.rejected": 1, "floodgate.scarce.rejected": 1},
	},
	{
		Name:   "weighted cost from a header",
		Config: pol(`{"name":"p","key":[{"type":"client_ip"}],"limits":[{"requests":"10/m"}],"cost":{"header":"x-cost","default":1,"max":8}}`),
		Steps: []Step{
			{Source: "10.0.0.1:1", Headers: [][2]string{{"x-cost", "6"}}, Status: 200, Want: map[string]string{"ratelimit": `"p";r=4;t=60`}},
			{Source: "10.0.0.1:1", Headers: [][2]string{{"x-cost", "5"}}, Status: 429},
			{Source: "10.0.0.1:1", Headers: [][2]string{{"x-cost", "junk"}}, Status: 200, Want: map[string]string{"ratelimit": `"p";r=3;t=60`}},
			{Source: "10.0.0.1:1", Headers: [][2]string{{"x-cost", "99"}}, Status: 429},
		},
	},
	{
		Name:   "cost above the quota is refused without Retry-After, as problem+json",
		Config: pol(`{"name":"p","key":[{"type":"client_ip"}],"limits":[{"requests":"5/m"}],"cost":{"header":"x-cost","max":100},"response":{"problem_json":true}}`),
		Steps: []Step{
			{Source: "10.0.0.1:1", Headers: [][2]string{{"x-cost", "6"}}, Status: 429,
				Body: `{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"request cost exceeds the quota","policy":"p","retry_after":0}`,
				Want: map[string]string{"retry-after": "", "content-type": "application/problem+json"}},
		},
	},
	{
		Name:   "jwt claim and query keys",
		Config: pol(`{"name":"p","key":[{"type":"jwt_claim","claim":"sub","header":"authorization"},{"type":"query","name":"tenant"}],"limits":[{"requests":"1/m"}]}`),
		Steps: []Step{
			{Source: "10.0.0.1:1", Headers: [][2]string{{":path", "/x?tenant=a"}, {"authorization", bearer(`{"sub":"alice"}`)}}, Status: 200},
			{Source: "10.0.0.2:1", Headers: [][2]string{{":path", "/x?tenant=a"}, {"authorization", bearer(`{"sub":"alice"}`)}}, Status: 429},
			{Source: "10.0.0.1:1", Headers: [][2]string{{":path", "/x?tenant=b"}, {"authorization", bearer(`{"sub":"alice"}`)}}, Status: 200},
			{Source: "10.0.0.1:1", Headers: [][2]string{{":path", "/x?tenant=a"}, {"authorization", bearer(`{"sub":"bob"}`)}}, Status: 200},
		},
	},
}

// bearer returns an unsigned JWT carrying payload (the plugin reads claims without verifying).
func bearer(payload string) string {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	return "Bearer " + enc(`{"alg":"none"}`) + "." + enc(payload) + ".x"
}

// Run runs every scenario against the gateways newGateway loads.
func Run(t *testing.T, newGateway func(t *testing.T, config string) Gateway) {
	for _, sc := range All {
		t.Run(sc.Name, func(t *testing.T) {
			g := newGateway(t, sc.Config)
			for i, st := range sc.Steps {
				for r := 0; r < max(st.Repeat, 1); r++ {
					status, resp, body := g.Send(t, st.Source, st.request(), st.upstream())
					where := fmt.Sprintf("step %d (repeat %d)", i, r)
					if status != st.Status {
						t.Fatalf("%s: status %d, want %d (headers %v, body %q)", where, status, st.Status, resp, body)
					}
					if st.Body != "" && body != st.Body {
						t.Fatalf("%s: body %q, want %q", where, body, st.Body)
					}
					for k, want := range st.Want {
						if got := header(resp, k); got != want {
							t.Fatalf("%s: %s = %q, want %q (all: %v)", where, k, got, want, resp)
						}
					}
				}
			}
			for name, want := range sc.Metrics {
				if got := g.Metric(t, name); got != want {
					t.Errorf("metric %s = %d, want %d", name, got, want)
				}
			}
		})
	}
}

// request returns the headers of the step's request: the defaults, overridden by the step's.
func (st Step) upstream() int {
	if st.Upstream == 0 {
		return 200
	}
	return st.Upstream
}

func (st Step) request() [][2]string {
	headers := append([][2]string{{":method", "GET"}, {":path", "/api/items"}, {":authority", "api.example.com"}}, st.Headers...)
	return dedupe(headers)
}

// dedupe keeps the last value of each header (a step may override :path).
func dedupe(h [][2]string) [][2]string {
	var out [][2]string
	for i, kv := range h {
		later := false
		for _, other := range h[i+1:] {
			if other[0] == kv[0] {
				later = true
			}
		}
		if !later {
			out = append(out, kv)
		}
	}
	return out
}

func header(h [][2]string, name string) string {
	for _, kv := range h {
		if strings.EqualFold(kv[0], name) {
			return kv[1]
		}
	}
	return ""
}
