package plugin

import (
	"strings"
	"testing"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
)

// answerProbe answers the helper's PING the plugin sent at load with status and body, and returns
// how many callouts the plugin context made so far.
func (e *emulated) answerProbe(t *testing.T, status, body string) int {
	t.Helper()
	calls := e.host.GetCalloutAttributesFromContext(proxytest.PluginContextID)
	if len(calls) == 0 || string(calls[len(calls)-1].Body) != `["PING"]` {
		t.Fatalf("no PING to answer among %d callouts", len(calls))
	}
	var headers [][2]string
	if status != "" {
		headers = [][2]string{{":status", status}}
	}
	e.host.CallOnHttpCallResponse(calls[len(calls)-1].CalloutID, headers, nil, []byte(body))
	return len(calls)
}

const probeTestConfig = `{"redis":{"cluster":"floodgate-redis-helper","token":"wrong","timeout_ms":50},
 "policies":[{"name":"p","key":[{"type":"client_ip"}],"limits":[{"rate":100}],"backend":"redis"}]}`

// TestProbeMakesMisconfigurationLoud: at load the plugin PINGs the helper; a refused token, an
// unreachable helper or an answer that is not the helper's is logged at critical level and
// counted, and the PING is sent again every second until the helper answers.
func TestProbeMakesMisconfigurationLoud(t *testing.T) {
	tests := []struct {
		name, status, body string
		metric, log        string // "" for a healthy helper
	}{
		{name: "healthy", status: "200", body: `{"result":"PONG"}`},
		{name: "wrong token", status: "401", body: `{"error":"Unauthorized"}`, metric: "floodgate.redis.probe_refused", log: "refused the token (answered 401)"},
		{name: "helper down", status: "503", body: "no healthy upstream", metric: "floodgate.redis.probe_unreachable", log: "is unreachable"},
		{name: "timeout", status: "504", body: "upstream request timeout", metric: "floodgate.redis.probe_unreachable", log: "is unreachable"},
		{name: "reset", status: "", metric: "floodgate.redis.probe_unreachable", log: "is unreachable (the call was reset)"},
		{name: "not the helper", status: "404", body: "not found", metric: "floodgate.redis.probe_unexpected", log: "unexpected answer to PING"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEmulated(t, probeTestConfig)
			calls := e.answerProbe(t, tc.status, tc.body)
			if calls != 1 {
				t.Fatalf("%d callouts at load, want one PING", calls)
			}
			critical := strings.Join(e.host.GetCriticalLogs(), "\n")
			if tc.metric == "" {
				if critical != "" || !strings.Contains(strings.Join(e.host.GetInfoLogs(), "\n"), "floodgate-redis-helper answered PING: ready") {
					t.Fatalf("critical %q, info %q", critical, e.host.GetInfoLogs())
				}
				e.now.Add(5000)
				e.host.Tick()
				if n := len(e.host.GetCalloutAttributesFromContext(proxytest.PluginContextID)); n != 1 {
					t.Fatalf("%d callouts: a helper that answered is not probed again", n)
				}
				return
			}
			if !strings.Contains(critical, tc.log) || e.Metric(t, tc.metric) != 1 {
				t.Fatalf("critical logs %q, %s = %d", critical, tc.metric, e.Metric(t, tc.metric))
			}
			e.host.Tick() // within the second: no new PING
			e.now.Add(1000)
			e.host.Tick()
			if n := e.answerProbe(t, tc.status, tc.body); n != 2 {
				t.Fatalf("%d callouts, want a second PING a second later", n)
			}
			if e.Metric(t, tc.metric) != 2 || len(e.host.GetCriticalLogs()) != 1 {
				t.Fatalf("the same cause again: counted (%d) but logged once (%q)", e.Metric(t, tc.metric), e.host.GetCriticalLogs())
			}
			e.now.Add(1000)
			e.host.Tick()
			e.answerProbe(t, "200", `{"result":"PONG"}`)
			if !strings.Contains(strings.Join(e.host.GetInfoLogs(), "\n"), "answered PING: ready") {
				t.Fatalf("info logs %q", e.host.GetInfoLogs())
			}
		})
	}
}
