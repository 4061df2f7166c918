package plugin

import (
	"strconv"
	"strings"
	"testing"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// redisAllowAnswer is the helper's answer to a decision Redis admits, with quota left: what a
// Redis that lost the key's state (failover, eviction) answers.
func redisAllowAnswer(quota, nowMs int64) []byte {
	// allowed, limit, window, remaining, retry, reset_after, sf, suppressed, decider, reason, reset, now
	ints := []int64{1, quota, 60_000, quota - 1, 0, 60_000, 0, 0, -1, 0, 0, nowMs}
	s := make([]string, len(ints))
	for i, v := range ints {
		s[i] = strconv.FormatInt(v, 10)
	}
	return []byte(`{"result":[` + strings.Join(s, ",") + `]}`)
}

// sendRedis runs one request of a redis-backed policy; a decision that waits for Redis gets
// answer. It returns the status and whether Redis was called.
func (e *emulated) sendRedis(t *testing.T, source string, answer []byte) (status int, called bool) {
	t.Helper()
	if err := e.host.SetProperty([]string{"source", "address"}, []byte(source)); err != nil {
		t.Fatal(err)
	}
	id := e.host.InitializeHttpContext()
	defer e.host.CompleteHttpContext(id)
	if e.host.CallOnRequestHeaders(id, [][2]string{{":path", "/"}}, true) == types.ActionPause {
		if lr := e.host.GetSentLocalResponse(id); lr != nil {
			return int(lr.StatusCode), false
		}
		for _, c := range e.host.GetCalloutAttributesFromContext(id) {
			called = true
			e.host.CallOnHttpCallResponse(c.CalloutID, [][2]string{{":status", "200"}}, nil, answer)
		}
		if lr := e.host.GetSentLocalResponse(id); lr != nil {
			return int(lr.StatusCode), called
		}
		if e.host.GetCurrentHttpStreamAction(id) != types.ActionContinue {
			t.Fatal("the request neither resumed nor was answered after Redis's answer")
		}
	}
	return 200, called
}

// Every redis-mode request is first counted on the proxy's own shared data: however Redis
// answers (here it lost the key's state and admits everything), one proxy never admits more than
// the quota in a window, and a key this proxy alone exhausted is refused without calling Redis.
func TestRedisLocalCountBoundsEveryProxy(t *testing.T) {
	e := newEmulated(t, `{"redis":{"cluster":"c","token":"`+strings.Repeat("k9", 16)+`"},
		"policies":[{"name":"r","key":[{"type":"client_ip"}],"limits":[{"requests":"3/m"}],"backend":"redis"}]}`)
	answer := redisAllowAnswer(3, e.now.Load())
	for i := 0; i < 3; i++ {
		if status, called := e.sendRedis(t, "10.0.0.1:1", answer); status != 200 || !called {
			t.Fatalf("request %d: status %d, Redis called %v; want 200 decided by Redis", i+1, status, called)
		}
	}
	for i := 0; i < 5; i++ {
		status, called := e.sendRedis(t, "10.0.0.1:1", answer)
		if status != 429 || called {
			t.Fatalf("request %d: status %d, Redis called %v; want 429 from the proxy's own count, no call", 4+i, status, called)
		}
	}
	// Another key is not affected.
	if status, called := e.sendRedis(t, "10.0.0.2:1", answer); status != 200 || !called {
		t.Fatalf("another key: status %d, Redis called %v", status, called)
	}
}
