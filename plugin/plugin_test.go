package plugin

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/floodgate-proxy/floodgate/internal/scenarios"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// emulated is the plugin under the SDK's proxytest emulator, with a fake clock.
type emulated struct {
	host proxytest.HostEmulator
	now  *atomic.Int64
}

func newEmulated(t *testing.T, config string) *emulated {
	t.Helper()
	now := &atomic.Int64{}
	now.Store(1_000_000)
	vm := NewVM(Options{NowMs: now.Load, Rand: func() float64 { return 0.5 }})
	host, reset := proxytest.NewHostEmulator(proxytest.NewEmulatorOption().WithVMContext(vm).WithPluginConfiguration([]byte(config)))
	t.Cleanup(reset)
	if host.StartVM() != types.OnVMStartStatusOK {
		t.Fatal("vm start failed")
	}
	if host.StartPlugin() != types.OnPluginStartStatusOK {
		t.Fatalf("configuration refused: %v", host.GetCriticalLogs())
	}
	return &emulated{host: host, now: now}
}

func (e *emulated) Send(t testing.TB, source string, headers [][2]string) (int, [][2]string, string) {
	t.Helper()
	return e.SendUpstream(t, source, headers, 200)
}

// SendUpstream runs one request; the upstream answers one that reaches it with status upstream.
func (e *emulated) SendUpstream(t testing.TB, source string, headers [][2]string, upstream int) (int, [][2]string, string) {
	t.Helper()
	if err := e.host.SetProperty([]string{"source", "address"}, []byte(source)); err != nil {
		t.Fatal(err)
	}
	id := e.host.InitializeHttpContext()
	defer e.host.CompleteHttpContext(id)
	if action := e.host.CallOnRequestHeaders(id, headers, true); action == types.ActionPause {
		lr := e.host.GetSentLocalResponse(id)
		if lr == nil {
			t.Fatal("paused without a local response")
		}
		return int(lr.StatusCode), lr.Headers, string(lr.Data)
	}
	e.host.CallOnResponseHeaders(id, [][2]string{{":status", strconv.Itoa(upstream)}}, true)
	return upstream, e.host.GetCurrentResponseHeaders(id), ""
}

func (e *emulated) Metric(t testing.TB, name string) int64 {
	t.Helper()
	v, err := e.host.GetCounterMetric(name)
	if err != nil {
		return 0
	}
	return int64(v)
}

func TestScenariosNative(t *testing.T) {
	scenarios.Run(t, func(t *testing.T, config string) scenarios.Gateway { return scenarioGateway{newEmulated(t, config)} })
}

func TestBadConfigurationIsRefusedNative(t *testing.T) {
	vm := NewVM(Options{})
	host, reset := proxytest.NewHostEmulator(proxytest.NewEmulatorOption().WithVMContext(vm).
		WithPluginConfiguration([]byte(`{"policies":[{"name":"p","key":[],"limits":[{"rate":1}]}]}`)))
	defer reset()
	if host.StartPlugin() != types.OnPluginStartStatusFailed {
		t.Fatal("a bad configuration was accepted")
	}
	logs := strings.Join(host.GetCriticalLogs(), "\n")
	if !strings.Contains(logs, "policies[0].key: must be an array of 1 to 8 key sources") {
		t.Fatalf("critical logs: %s", logs)
	}
}

func TestWindowSlidesWithTheClock(t *testing.T) {
	// Only the emulator can move time: 2 per second, rejected until the first bucket leaves.
	e := newEmulated(t, `{"policies":[{"name":"p","key":[{"type":"client_ip"}],"limits":[{"rate":2,"window":1}]}]}`)
	send := func() int {
		s, _, _ := e.Send(t, "10.0.0.1:1", [][2]string{{":method", "GET"}, {":path", "/"}, {":authority", "x"}})
		return s
	}
	if send() != 200 || send() != 200 {
		t.Fatal("the quota was not admitted")
	}
	_, h, _ := e.Send(t, "10.0.0.1:1", [][2]string{{":path", "/"}})
	if got := headerValue(h, "retry-after"); got != "1" {
		t.Fatalf("retry-after %q", got)
	}
	e.now.Add(999)
	if send() != 429 {
		t.Fatal("admitted before the window slid")
	}
	e.now.Add(1)
	if send() != 200 {
		t.Fatal("still rejected after the window slid")
	}
}

func TestSuppressedSheddingNative(t *testing.T) {
	// Q = 10, H = 20 over 60 s; draws alternate so half of the attempts in the shedding zone pass.
	e := newEmulated(t, `{"policies":[{"name":"s","key":[{"type":"constant","value":"all"}],"limits":[{"requests":"10/m"}],"strategy":"suppressed","hard_limit_factor":2}]}`)
	admitted := 0
	for i := 0; i < 200; i++ {
		if s, _, _ := e.Send(t, "10.0.0.1:1", [][2]string{{":path", "/"}}); s == 200 {
			admitted++
		}
	}
	if admitted < 10 || admitted > 20 {
		t.Fatalf("admitted %d, want between Q=10 and H=20", admitted)
	}
	if e.Metric(t, "floodgate.s.suppressed") == 0 {
		t.Fatal("nothing was shed")
	}
}

func headerValue(h [][2]string, name string) string {
	for _, kv := range h {
		if kv[0] == name {
			return kv[1]
		}
	}
	return ""
}

// Retry-After rounds the time left up to whole seconds: a client told to come back sooner would
// be rejected again.
func TestRetryAfterRoundsUp(t *testing.T) {
	e := newEmulated(t, `{"policies":[{"name":"p","key":[{"type":"client_ip"}],"limits":[{"rate":1,"window":10}],"response":{"headers":"both"}}]}`)
	send := func() (int, [][2]string) {
		s, h, _ := e.Send(t, "10.0.0.1:1", [][2]string{{":path", "/"}})
		return s, h
	}
	for i := 0; i < 10; i++ {
		send()
	}
	for _, c := range []struct {
		advanceMs int64
		want      string
	}{{2500, "8"}, {1, "8"}, {499, "7"}, {1, "7"}, {999, "6"}} {
		e.now.Add(c.advanceMs)
		status, h := send()
		if status != 429 || headerValue(h, "retry-after") != c.want {
			t.Fatalf("after %d more ms: %d retry-after %q, want 429 and %s", c.advanceMs, status, headerValue(h, "retry-after"), c.want)
		}
	}
}

// scenarioGateway is the emulated plugin as scenarios.Gateway.
type scenarioGateway struct{ *emulated }

func (g scenarioGateway) Send(t testing.TB, source string, headers [][2]string, upstream int) (int, [][2]string, string) {
	t.Helper()
	return g.SendUpstream(t, source, headers, upstream)
}
