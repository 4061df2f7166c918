package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/floodgate-proxy/floodgate/e2e/envoyhost"
)

// The policies of issue #14 on the redis and hybrid backends, through plugin.wasm on gateways of
// two worker VMs sharing one Redis (the local backend runs the same features in
// internal/scenarios, in wazero and in V8).

// gateways starts n gateways of 2 VMs on one Redis, with a configuration of policies.
func gateways(t *testing.T, n int, redisFields, policies string) []*envoyhost.Host {
	t.Helper()
	addr, _ := helperFor(t)
	cfg := `{"redis":{"cluster":"floodgate-redis-helper","token":"` + helperToken + `","timeout_ms":2000` + redisFields + `},"policies":[` + policies + `]}`
	var hs []*envoyhost.Host
	for range n {
		hs = append(hs, startHost(t, cfg, 2, withCluster(addr)))
	}
	return hs
}

// settle waits until h has had calls script calls answered (a NOSCRIPT answer and its EVAL count
// as one), then runs one request that no policy matches through each of its VMs: a VM handles its
// work in order, so every answer to those calls has been applied when it returns.
func settle(t *testing.T, h *envoyhost.Host, calls int) {
	t.Helper()
	answered := func() (n int) {
		for _, c := range decisionCalls(h) {
			if c.Status == 200 {
				n++
			}
		}
		return n
	}
	waitFor(t, 10*time.Second, strconv.Itoa(calls)+" calls", func() bool { return answered() >= calls })
	for range 2 {
		sendUpstream(t, h, "192.0.2.250:1", [][2]string{{":method", "GET"}, {":path", "/settle"}, {":authority", "x"}}, 200)
	}
}

func login(t *testing.T, h *envoyhost.Host, client string, upstream int) answer {
	t.Helper()
	return sendUpstream(t, h, client, [][2]string{{":method", "POST"}, {":path", "/login"}, {":authority", "api.example.com"}}, upstream)
}

// TestTiersInRedisAndHybrid: a gold and a free consumer get their own tier's quota across two
// gateways, with their tier's numbers in the headers; an internal one is not limited.
func TestTiersInRedisAndHybrid(t *testing.T) {
	for _, backend := range []string{"redis", "hybrid"} {
		t.Run(backend, func(t *testing.T) {
			hs := gateways(t, 2, "", `{"name":"plan","key":[{"type":"header","name":"x-api-key"}],"backend":"`+backend+`",
				"tiers":{"by":{"type":"header","name":"x-plan"},"values":{"gold":{"limits":[{"requests":"6/m"}]},"internal":{"unlimited":true}},
					"default":{"limits":[{"requests":"2/m"}]}},"response":{"headers":"both"}}`)
			count := func(key, plan string) (admitted int, first answer) {
				for i := range 20 {
					a := send(t, hs[i%2], "198.51.100.40:1", [2]string{"x-api-key", key}, [2]string{"x-plan", plan})
					if i == 0 {
						first = a
					}
					if a.status == 200 {
						admitted++
					}
				}
				return admitted, first
			}
			gold, g := count("g", "gold")
			free, f := count("f", "")
			internal, in := count("i", "internal")
			t.Logf("%s: gold %d of 20, free %d of 20, internal %d of 20", backend, gold, free, internal)
			if g.header("ratelimit-policy") != `"plan";q=6;w=60` || f.header("ratelimit-policy") != `"plan";q=2;w=60` || in.header("ratelimit-policy") != "" {
				t.Fatalf("headers: gold %v, free %v, internal %v", g.headers, f.headers, in.headers)
			}
			// Redis decides every request exactly; hybrid never admits more than the quota (a
			// reservation one gateway holds may leave the other short).
			if internal != 20 || gold > 6 || free > 2 || (backend == "redis" && (gold != 6 || free != 2)) || gold == 0 || free == 0 {
				t.Fatalf("%s: gold %d (quota 6), free %d (quota 2), internal %d (unlimited)", backend, gold, free, internal)
			}
		})
	}
}

// TestBruteForceAcrossGateways: failed logins count on the response, in Redis, across two
// gateways; a success resets the key; when the key has no room left its block starts for every
// gateway. A gateway that has not seen the key's last failures lets one more through (it learns
// from that one's answer): at most one per gateway beyond the quota.
func TestBruteForceAcrossGateways(t *testing.T) {
	hs := gateways(t, 2, "", `{"name":"login","match":{"path":{"exact":"/login"}},"key":[{"type":"client_ip"}],"backend":"redis",
		"limits":[{"requests":"3/10m"}],"count":{"on":"response","statuses":[401]},"reset":{"statuses":[200]},"block_for":"15m"}`)
	a, b := hs[0], hs[1]
	const client = "203.0.113.66:1"
	calls := [2]int{}
	step := func(g int, upstream, want int, callsMade int) answer {
		t.Helper()
		ans := login(t, hs[g], client, upstream)
		if ans.status != want {
			t.Fatalf("step %d: gateway %d, upstream %d: %d, want %d (%v)", calls[0]+calls[1], g, upstream, ans.status, want, ans.headers)
		}
		calls[g] += callsMade
		settle(t, hs[g], calls[g])
		return ans
	}
	step(0, 401, 401, 1) // counted in Redis: 2 left
	step(1, 401, 401, 1) // 1 left
	step(0, 200, 200, 1) // a success resets the key: 3 left
	step(0, 401, 401, 1)
	step(1, 401, 401, 1)
	step(0, 401, 401, 1) // 0 left: gateway A learns it from the record's answer
	// A turns the next one down on what it learned, and starts the block in Redis.
	if ans := step(0, 200, 429, 1); ans.header("retry-after") == "" {
		t.Fatalf("no Retry-After on a block: %v", ans.headers)
	}
	// B last heard "1 left": it lets one through, whose record finds the key blocked.
	step(1, 401, 401, 1)
	for g, h := range []*envoyhost.Host{a, b} {
		ans := login(t, h, client, 200)
		retry, _ := strconv.Atoi(ans.header("retry-after"))
		if ans.status != 429 || retry < 890 || retry > 900 {
			t.Fatalf("gateway %d after the block: %d retry-after %q, want 429 and about 900", g, ans.status, ans.header("retry-after"))
		}
	}
	if ans := login(t, a, "203.0.113.67:1", 401); ans.status != 401 {
		t.Fatalf("another client: %d", ans.status)
	}
	if n := metric(t, a, "floodgate.login.recorded") + metric(t, b, "floodgate.login.recorded"); n != 7 {
		t.Fatalf("%d failures recorded, want 7 (2 before the reset, 3 after, the one B let through, another client's)", n)
	}
}

// TestBlocksAcrossGateways: a key a decision rejects is blocked for block_for on every gateway.
func TestBlocksAcrossGateways(t *testing.T) {
	for _, backend := range []string{"redis", "hybrid"} {
		t.Run(backend, func(t *testing.T) {
			hs := gateways(t, 2, "", `{"name":"p","key":[{"type":"client_ip"}],"limits":[{"requests":"2/m"}],"block_for":"5m","backend":"`+backend+`"}`)
			const client = "198.51.100.70:1"
			admitted := 0
			for i := 0; admitted < 2 && i < 20; i++ {
				if send(t, hs[0], client).status == 200 {
					admitted++
				}
			}
			var blocked answer
			waitFor(t, 10*time.Second, "the block on the other gateway", func() bool {
				blocked = send(t, hs[0], client) // rejected: the block starts (hybrid: at the next sync)
				blocked = send(t, hs[1], client)
				retry, _ := strconv.Atoi(blocked.header("retry-after"))
				return blocked.status == 429 && retry > 200
			})
			retry, _ := strconv.Atoi(blocked.header("retry-after"))
			if retry < 240 || retry > 300 {
				t.Fatalf("%s: retry-after %d on the other gateway, want the block's rest (about 300)", backend, retry)
			}
		})
	}
}

// TestAllOrNothingInRedis: a request the second policy rejects leaves the first policy's count in
// Redis unchanged (its unit is given back).
func TestAllOrNothingInRedis(t *testing.T) {
	hs := gateways(t, 1, "", `{"name":"per-client","key":[{"type":"client_ip"}],"limits":[{"requests":"3/m"}],"backend":"redis"},
		{"name":"scarce","match":{"path":{"prefix":"/scarce"}},"key":[{"type":"constant","value":"all"}],"limits":[{"requests":"2/m"}],"backend":"redis"}`)
	h := hs[0]
	const client = "198.51.100.80:1"
	get := func(path string) answer {
		return sendUpstream(t, h, client, [][2]string{{":method", "GET"}, {":path", path}, {":authority", "x"}}, 200)
	}
	for range 2 {
		if a := get("/scarce"); a.status != 200 {
			t.Fatalf("scarce: %d", a.status)
		}
	}
	if a := get("/scarce"); a.status != 429 || !strings.Contains(a.header("ratelimit"), `"scarce";r=0`) {
		t.Fatalf("third scarce request: %d %v", a.status, a.headers)
	}
	// 2 x 2 decisions, then per-client's (scarce's third is refused by the proxy's own count,
	// without a call), then per-client's refund.
	settle(t, h, 2+2+1+1)
	if a := get("/other"); a.status != 200 || a.header("ratelimit") != `"per-client";r=0;t=60` {
		t.Fatalf("per-client after the rejected request: %d %q, want 200 and r=0 (3 of 3: the rejected one gave its unit back)", a.status, a.header("ratelimit"))
	}
	if a := get("/other"); a.status != 429 {
		t.Fatalf("per-client's fourth: %d", a.status)
	}
}
