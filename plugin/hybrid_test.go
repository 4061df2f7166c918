package plugin

import (
	"testing"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/config"
	"github.com/floodgate-proxy/floodgate/internal/host"
	"github.com/floodgate-proxy/floodgate/redislimit"
	"github.com/floodgate-proxy/floodgate/store"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
)

func TestLeaseCodec(t *testing.T) {
	in := lease{h1: 1, h2: 2, reserved: 3, spent: 4, reservedAt: 5, denied: 6, attempts: 7, validUntil: 8,
		exhaustedUntil: 9, limit: 10, windowMs: 11, remaining: 12, resetAt: 13, sf: 0.25, flight: 14,
		flightUsed: 15, flightDenied: 16, lastSpentAt: 17, redisOffset: -18, rejected: 19, tracked: true}
	var out lease
	out.decode(in.encode(make([]byte, leaseSize)))
	if out != in {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out, in)
	}
}

func TestDecideLease(t *testing.T) {
	abs, _ := algorithm.NewPolicy(algorithm.Absolute, 1, mustLimit(t, 100, 1))
	sup, _ := algorithm.NewPolicy(algorithm.Suppressed, 2, mustLimit(t, 100, 1))
	const now = 10_000
	granted := lease{reserved: 10, spent: 4, validUntil: now + 1, limit: 100, windowMs: 1000, remaining: 30, resetAt: now + 500}
	cases := []struct {
		name        string
		p           *algorithm.Policy
		l           lease
		cost        int64
		draw        float64
		allowed     bool
		remote      bool
		reason      algorithm.Reason
		spent, deny int64
	}{
		{name: "new key: decided in Redis", p: abs, l: lease{}, cost: 1, remote: true},
		{name: "within the reservation", p: abs, l: granted, cost: 6, allowed: true, spent: 10},
		{name: "reservation spent, room in Redis: decided there", p: abs, l: granted, cost: 7, remote: true, spent: 4},
		{name: "reservation spent, none in Redis either", p: abs, l: func() lease { l := granted; l.remaining = 0; return l }(),
			cost: 7, reason: algorithm.ReasonQuotaExhausted, spent: 4},
		{name: "known exhausted, even without a reservation", p: abs, l: lease{exhaustedUntil: now + 100}, cost: 1,
			reason: algorithm.ReasonQuotaExhausted},
		{name: "the window freed when the last sync said: decided in Redis", p: abs,
			l: lease{reserved: 0, validUntil: now + 1, exhaustedUntil: now, limit: 100, remaining: 0}, cost: 1, remote: true},
		{name: "lapsed reservation: decided in Redis", p: abs, l: func() lease { l := granted; l.validUntil = now; return l }(),
			cost: 1, remote: true, spent: 4},
		{name: "cost above the limit: Redis says why", p: abs, l: granted, cost: 101, remote: true, spent: 4},
		{name: "suppressed: shed by the last sync's factor", p: sup, l: func() lease { l := granted; l.sf = 0.5; return l }(),
			cost: 1, draw: 0.4, reason: algorithm.ReasonSuppressed, spent: 4, deny: 1},
		{name: "suppressed: passes the draw", p: sup, l: func() lease { l := granted; l.sf = 0.5; return l }(),
			cost: 1, draw: 0.6, allowed: true, spent: 5},
		{name: "suppressed: hard limit", p: sup, l: func() lease { l := granted; l.remaining = 0; return l }(),
			cost: 7, reason: algorithm.ReasonHardLimit, spent: 4, deny: 7},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := c.l
			res, remote := l.decideLease(c.p, now, c.cost, c.draw, 100)
			if remote != c.remote || (!remote && (res.Allowed != c.allowed || res.Reason != c.reason)) {
				t.Fatalf("result %+v remote %v", res, remote)
			}
			if l.spent != c.spent || l.denied != c.deny || l.attempts != c.cost {
				t.Fatalf("lease after: spent %d denied %d attempts %d", l.spent, l.denied, l.attempts)
			}
			if !remote && !res.Allowed && res.RetryAfterMs < 100 {
				t.Fatalf("retry after %d ms, want at least the sync interval", res.RetryAfterMs)
			}
		})
	}
}

// TestLeaseSyncCycle walks a lease through a sync that succeeds and one whose answer is lost.
func TestLeaseSyncCycle(t *testing.T) {
	l := lease{reserved: 10, spent: 4, denied: 1, attempts: 6, reservedAt: 500, validUntil: 2000, lastSpentAt: 990, redisOffset: 7}
	sent := l.send(1000)
	want := redislimit.Lease{Release: 10, ReleaseAtMs: 500, Used: 4, Denied: 1, Want: 12, UsedAtMs: 997}
	if sent != want {
		t.Fatalf("sent %+v, want %+v", sent, want)
	}
	if l.reserved != 6 || l.spent != 0 || l.flight != 1000 || !l.needsSync() {
		t.Fatalf("in flight: %+v", l)
	}
	l.spent = 2 // admitted while the answer travels
	l.granted(&redislimit.Grant{Units: 12, AtMs: 1020, Limit: 100, Remaining: 40, ResetAfterMs: 300}, 1030, 300)
	if l.reserved != 12 || l.spent != 2 || l.reservedAt != 1020 || l.validUntil != 1330 || l.flight != 0 || l.resetAt != 1330 || l.redisOffset != 20 {
		t.Fatalf("granted: %+v", l)
	}

	l.attempts = hotAttempts
	l.send(1100)
	l.spent = 3
	l.lost()
	if l.reserved != 0 || l.validUntil != 0 || l.spent != 2+3 || l.flight != 0 {
		t.Fatalf("lost: what it carried must be sent again, nothing released: %+v", l)
	}
	if next := l.send(1200); next.Release != 0 || next.Used != 5 {
		t.Fatalf("after a lost lease: %+v", next)
	}

	idle := lease{reserved: 8, spent: 2, reservedAt: 500, attempts: hotAttempts - 1}
	if sent := idle.send(1000); sent.Want != 0 || idle.reserved != 0 {
		t.Fatalf("a cold key gives everything back: sent %+v, left %+v", sent, idle)
	}
	idle.granted(&redislimit.Grant{}, 1010, 300)
	if idle.needsSync() {
		t.Fatalf("an idle key stops syncing: %+v", idle)
	}
}

func mustLimit(t *testing.T, rate float64, windowS int64) algorithm.Limit {
	t.Helper()
	l, err := algorithm.NewLimit(rate, windowS, 0)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestKeyHashesNameRedisKeysAsBefore(t *testing.T) {
	key := []byte("198.51.100.7")
	h1, h2 := keyHashes(key)
	if h1 != store.Hash(key) || h2 != store.Hash(append([]byte{0xff}, key...)) {
		t.Fatal("keyHashes must keep the Redis names of existing keys")
	}
}

const hybridTestConfig = `{"redis":{"cluster":"c","token":"t","breaker":{"failures":1,"cooldown_ms":60000}},
 "policies":[{"name":"p","key":[{"type":"client_ip"}],"limits":[{"rate":100}],"backend":"hybrid"}]}`

// With the breaker open, a key without a reservation is decided by the failure mode and sends no
// lease of its own (only the leader's tick calls the helper then).
func TestHybridOpenBreakerStopsLeasesFromRequests(t *testing.T) {
	e := newEmulated(t, hybridTestConfig)
	open := breakerState{openUntil: e.now.Load() + 60000}
	if err := host.SetSharedData("floodgate:breaker:c", open.encode(), 0); err != nil {
		t.Fatal(err)
	}
	probed := e.answerProbe(t, "200", `{"result":"PONG"}`) // the helper's check at load (probe.go)
	answered := probed
	for i := 0; i < 40; i++ {
		e.Send(t, "10.0.0.1:1", [][2]string{{":path", "/"}})
		calls := e.host.GetCalloutAttributesFromContext(proxytest.PluginContextID)
		for _, c := range calls[answered:] {
			e.host.CallOnHttpCallResponse(c.CalloutID, [][2]string{{":status", "503"}}, nil, []byte("no healthy upstream"))
		}
		answered = len(calls)
	}
	t.Logf("breaker open: 40 requests made %d callouts (syncs metric %d, sync_failures %d, fallbacks %d)", answered-probed,
		e.Metric(t, "floodgate.hybrid.syncs"), e.Metric(t, "floodgate.hybrid.sync_failures"), e.Metric(t, "floodgate.p.fallbacks"))
	if answered > probed {
		t.Errorf("%d lease callouts to the helper while its breaker is open", answered-probed)
	}
}

// A bitmap left by a configuration with more slots (a reload) is read safely by the new leader.
func TestHybridTickAfterSlotsShrink(t *testing.T) {
	newEmulated(t, hybridTestConfig)
	// Old configuration: 64 slots; one hot lease in slot >= 16 with a reservation, marked.
	old, _ := store.New(sharedData{}, store.Options{Prefix: "floodgate:p:lease", Slots: 64, PayloadSize: leaseSize})
	var h1, h2 uint64
	for i := 0; ; i++ {
		h1, h2 = keyHashes([]byte{byte(i), 'k'})
		if h1%64 >= 16 {
			break
		}
	}
	now := int64(1_000_000)
	if _, err := old.UpdateHash(h1, now, 1000, func([]byte) ([]byte, bool) {
		l := lease{h1: h1, h2: h2, reserved: 5, validUntil: now + 300, tracked: true}
		return l.encode(make([]byte, leaseSize)), true
	}); err != nil {
		t.Fatal(err)
	}
	bits := make([]byte, 64/8)
	s := old.SlotOf(h1)
	bits[s/8] |= 1 << (s % 8)
	if err := host.SetSharedData("floodgate:p:lease:marked", bits, 0); err != nil {
		t.Fatal(err)
	}
	// New configuration: 16 slots.
	cfg, err := config.Parse([]byte(`{"shared_data":{"slots":16},` + hybridTestConfig[1:]))
	if err != nil {
		t.Fatal(err)
	}
	l, err := newLimiter(cfg, Options{NowMs: func() int64 { return now + 10 }, Rand: func() float64 { return 0.5 }})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("tick panicked: %v", r)
		}
	}()
	l.tick()
}

// One VM leads the syncs: another takes the lead only after the leader stayed silent for three
// intervals, and the old leader does not take it back while the new one is alive.
func TestHybridLeaderElection(t *testing.T) {
	newEmulated(t, hybridTestConfig)
	cfg, err := config.Parse([]byte(hybridTestConfig))
	if err != nil {
		t.Fatal(err)
	}
	h, err := newHelper(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const now = 1_000_000
	a, _ := newSyncer(cfg, h, 1, func() int64 { return now })
	b, _ := newSyncer(cfg, h, 2, func() int64 { return now })
	interval := a.intervalMs
	if !a.lead(now) {
		t.Fatal("the first VM to tick does not lead")
	}
	for _, at := range []int64{now, now + interval, now + 3*interval - 1} {
		if b.lead(at) {
			t.Fatalf("a second VM took the lead %d ms after the leader's last tick", at-now)
		}
	}
	if !a.lead(now + 2*interval) {
		t.Fatal("the leader lost the lead while ticking")
	}
	if b.lead(now + 5*interval - 1) {
		t.Fatal("the leader's renewed term was ignored")
	}
	if !b.lead(now + 5*interval) {
		t.Fatal("no VM took over from a leader silent for three intervals")
	}
	if a.lead(now + 5*interval + 1) {
		t.Fatal("the old leader took the lead back from a live one")
	}
}

// An answer to a lease that is no longer in flight (declared lost, then sent again) is ignored:
// applying it would grant a reservation Redis made for another flight.
func TestHybridAnswerToAnOldFlightIsIgnored(t *testing.T) {
	e := newEmulated(t, hybridTestConfig)
	cfg, err := config.Parse([]byte(hybridTestConfig))
	if err != nil {
		t.Fatal(err)
	}
	now := e.now.Load()
	l, err := newLimiter(cfg, Options{NowMs: func() int64 { return now }, Rand: func() float64 { return 0.5 }})
	if err != nil {
		t.Fatal(err)
	}
	b := l.policies[0].tiers[0].backend.(*hybridBackend)
	h1, h2 := keyHashes([]byte("k"))
	if _, err := b.leases.UpdateHash(h1, now, b.ttlMs, func([]byte) ([]byte, bool) {
		ls := lease{h1: h1, h2: h2, flight: now - 50, flightUsed: 3, tracked: true}
		return ls.encode(make([]byte, leaseSize)), true
	}); err != nil {
		t.Fatal(err)
	}
	read := func() lease {
		t.Helper()
		var ls lease
		if err := b.updateLease(h1, now, func(l *lease) bool { ls = *l; return false }); err != nil {
			t.Fatal(err)
		}
		return ls
	}
	grant := &redislimit.Grant{Units: 40, AtMs: now, Limit: 100, WindowMs: 1000, Remaining: 60}
	l.sync.applyAll([]sentLease{{b: b, h1: h1, h2: h2, at: now - 400}}, []*redislimit.Grant{grant}, nil, now)
	if ls := read(); ls.reserved != 0 || ls.flight != now-50 {
		t.Fatalf("an answer to an older flight was applied: %+v", ls)
	}
	l.sync.applyAll([]sentLease{{b: b, h1: h1, h2: h2, at: now - 50}}, []*redislimit.Grant{grant}, nil, now)
	if ls := read(); ls.reserved != 40 || ls.flight != 0 {
		t.Fatalf("the answer to the flight in progress was not applied: %+v", ls)
	}
}
