package plugin

import (
	"strings"
	"testing"

	"github.com/floodgate-proxy/floodgate/config"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

func newTestBreaker(t *testing.T, failures uint32, cooldownMs int64) *breaker {
	t.Helper()
	_, reset := proxytest.NewHostEmulator(proxytest.NewEmulatorOption())
	t.Cleanup(reset)
	cfg := &config.Config{SharedData: config.SharedData{Prefix: "floodgate"},
		Redis: &config.Redis{Cluster: "c", TimeoutMs: 50, SyncTimeoutMs: 50, BreakerFailures: failures, BreakerCooldownMs: cooldownMs}}
	b, err := newBreaker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openedCount(t *testing.T, b *breaker) uint64 {
	t.Helper()
	v, err := b.opened.Value()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The breaker opens at exactly its threshold of consecutive failures; a success in between
// starts the count again.
func TestBreakerOpensAtItsThreshold(t *testing.T) {
	b := newTestBreaker(t, 3, 1000)
	const now = 10_000
	for i := 0; i < 2; i++ {
		b.record(false, now)
	}
	b.record(true, now)
	for i := 0; i < 2; i++ {
		b.record(false, now)
		if b.open(now) {
			t.Fatalf("open after %d consecutive failures (a success came before), threshold 3", i+1)
		}
	}
	b.record(false, now)
	if !b.open(now) || !b.open(now+999) {
		t.Fatal("not open for its cool-down after 3 consecutive failures")
	}
	if n := openedCount(t, b); n != 1 {
		t.Fatalf("breaker_opened %d, want 1", n)
	}
	b.record(false, now+10) // failures while open change nothing
	if n := openedCount(t, b); n != 1 {
		t.Fatalf("breaker_opened %d after a failure while open, want 1", n)
	}
}

// After the cool-down exactly one call goes through (the probe); its outcome closes the breaker
// or opens it for another cool-down.
func TestBreakerHalfOpenSendsOneProbe(t *testing.T) {
	b := newTestBreaker(t, 1, 1000)
	const now = 10_000
	b.record(false, now)
	if !b.open(now + 999) {
		t.Fatal("closed during the cool-down")
	}
	probes := 0
	for i := 0; i < 10; i++ {
		if !b.open(now + 1000) {
			probes++
		}
	}
	if probes != 1 {
		t.Fatalf("%d calls let through after the cool-down, want exactly one probe", probes)
	}
	b.record(false, now+1010) // the probe failed
	if !b.open(now+1500) || b.open(now+2010) != false {
		t.Fatal("a failed probe must open the breaker for one more cool-down, then probe again")
	}
	if !b.open(now + 2010) {
		t.Fatal("a second probe was let through while the first is in flight")
	}
	b.record(true, now+2020) // the probe succeeded
	for i := 0; i < 3; i++ {
		if b.open(now + 2020) {
			t.Fatal("still open after a probe succeeded")
		}
	}
	if n := openedCount(t, b); n != 1 {
		t.Fatalf("breaker_opened %d, want 1 (a failed probe re-opens, it does not count again)", n)
	}
}

// A probe whose answer never comes (its VM was replaced) does not keep the breaker open for ever.
func TestBreakerLostProbeIsReplaced(t *testing.T) {
	b := newTestBreaker(t, 1, 1000)
	const now = 10_000
	b.record(false, now)
	if b.open(now + 1000) {
		t.Fatal("no probe after the cool-down")
	}
	if !b.open(now + 1000 + b.probeTimeoutMs - 1) {
		t.Fatal("a second probe while the first may still answer")
	}
	if b.open(now + 1000 + b.probeTimeoutMs) {
		t.Fatal("the lost probe was never replaced")
	}
}

// While Redis cannot decide, a suppressed redis policy sheds on the proxy's own count as the local
// strategy would, rather than admitting up to the hard quota.
func TestRedisFallbackShedsForSuppressed(t *testing.T) {
	e := newEmulated(t, `{"redis":{"cluster":"c","token":"`+strings.Repeat("k9", 16)+`","breaker":{"failures":1,"cooldown_ms":600000}},
		"policies":[{"name":"s","key":[{"type":"client_ip"}],"limits":[{"requests":"10/m"}],"strategy":"suppressed","hard_limit_factor":3,"backend":"redis"}]}`)
	// The first decision's call fails (and the probe's): the breaker opens and every later
	// decision falls back at once.
	if err := e.host.SetProperty([]string{"source", "address"}, []byte("10.0.0.1:1")); err != nil {
		t.Fatal(err)
	}
	id := e.host.InitializeHttpContext()
	if e.host.CallOnRequestHeaders(id, [][2]string{{":path", "/"}}, true) != types.ActionPause {
		t.Fatal("the first decision did not wait for Redis")
	}
	for _, ctx := range []uint32{proxytest.PluginContextID, id} {
		for _, c := range e.host.GetCalloutAttributesFromContext(ctx) {
			e.host.CallOnHttpCallResponse(c.CalloutID, [][2]string{{":status", "503"}}, nil, []byte("no healthy upstream"))
		}
	}
	e.host.CompleteHttpContext(id)
	admitted := 0
	for i := 0; i < 100; i++ {
		if s, _, _ := e.Send(t, "10.0.0.1:1", [][2]string{{":path", "/"}}); s == 200 {
			admitted++
		}
	}
	if e.Metric(t, "floodgate.s.fallbacks") < 100 || e.Metric(t, "floodgate.s.suppressed") == 0 {
		t.Fatalf("fallbacks %d, suppressed %d: want every decision local, some shed",
			e.Metric(t, "floodgate.s.fallbacks"), e.Metric(t, "floodgate.s.suppressed"))
	}
	if admitted >= 29 {
		t.Fatalf("%d of 100 admitted locally: the hard quota, not the suppressed strategy, decided", admitted)
	}
}

// The bound of Redis's clock never exceeds the true offset, tightens with better answers, and is
// replaced by a fresh one after a minute.
func TestRedisClockBoundsTheOffsetFromBelow(t *testing.T) {
	var c redisClock
	if c.deadline(1000) != 0 {
		t.Fatal("a deadline before any answer")
	}
	// Redis is 500 ms ahead; answers take 30 ms then 5 ms to come back after Redis stamped them.
	c.observe(10_500, 10_030)
	if got := c.deadline(20_000); got != 20_470 {
		t.Fatalf("deadline %d, want 20470 (offset bounded by 470)", got)
	}
	c.observe(11_500, 11_005)
	c.observe(12_500, 12_090) // a looser bound does not replace a tighter one
	if got := c.deadline(20_000); got != 20_495 {
		t.Fatalf("deadline %d, want 20495", got)
	}
	c.observe(80_000, 80_100) // Redis's clock stepped back; a minute later the fresh bound wins
	if got := c.deadline(90_000); got != 89_900 {
		t.Fatalf("deadline %d, want 89900 after the old bound aged out", got)
	}
}
