package plugin

import (
	"fmt"
	"math"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/config"
	"github.com/floodgate-proxy/floodgate/redislimit"
	"github.com/floodgate-proxy/floodgate/store"
)

// hybridBackend decides locally on reservations made in Redis, and syncs on a tick.
//
// Per key, Redis holds the global sliding-window state (the state format of algorithm/), in
// which every proxy's reservation counts as accepted. A proxy admits a request locally only
// against the reservation Redis made for it, so the proxies together never admit more than the
// limit; the price is that a reservation one proxy does not use is unavailable to the others
// until its next sync gives it back. On every tick one worker per proxy (the leader, agreed on
// through shared data) sends, in one /pipeline call, one lease per active key: the reservation
// to give back, what was admitted and denied against it (the admitted units counted at the time
// of the last of them, on Redis's clock through an upper bound of the offset: they leave the
// window late, never early), and the size of the next reservation (twice the key's demand in the
// last interval, and at least what was left, which covers what workers admit while the answer is
// in flight). See redislimit.Lease.
//
// A key without a valid reservation (new on this proxy, or a missed sync) is decided in Redis
// like the redis backend, and so is a key whose reservation is spent while the last sync said the
// window had room left (when it had none, the key is rejected locally until the time it said one
// unit would fit again). The first such request also sends the key's lease at once, from the
// worker that saw it, so that decisions turn local after one round trip rather than at the next
// tick. When Redis cannot be reached, reservations lapse and the failure mode applies (by default
// "local": the local algorithm on this proxy's shared data).
type hybridBackend struct {
	ps     *policyState
	ns     string // the tier's state name (tierState.ns)
	policy *algorithm.Policy
	// remote decides the keys without a usable reservation.
	remote *redisBackend
	sync   *syncer
	// leases are the keys' hybrid states (lease.go); dirtyKey names the shared-data bitmap of the
	// lease slots the leader must sync.
	leases   *store.Store
	dirtyKey string
	ttlMs    int64
	// validityMs is how long a reservation may be spent; firstWant is the first reservation of a
	// key: twice what the limit allows per interval.
	validityMs, firstWant int64
	unmarked              []uint32 // slots the leader could not mark again (see collect)
}

func newHybridBackend(cfg *config.Config, ps *policyState, ts *tierState, s *syncer, remote *redisBackend) (*hybridBackend, error) {
	prefix := cfg.SharedData.Prefix + ":" + ts.ns + ":lease"
	leases, err := store.New(sharedData{}, store.Options{Prefix: prefix, Slots: cfg.SharedData.Slots, PayloadSize: leaseSize})
	if err != nil {
		return nil, fmt.Errorf("lease store: %w", err)
	}
	p := ts.policy
	b := &hybridBackend{ps: ps, ns: ts.ns, policy: p, remote: remote, sync: s, leases: leases, dirtyKey: prefix + ":marked",
		ttlMs: p.LongestWindowMs(), validityMs: validityMs(p, s.intervalMs), firstWant: firstWant(p, s.intervalMs)}
	s.backends = append(s.backends, b)
	return b, nil
}

// firstWant is the size of a key's first reservation: twice what its tightest limit allows per
// sync interval, at least one unit.
func firstWant(p *algorithm.Policy, intervalMs int64) int64 {
	rate := math.Inf(1)
	for _, l := range p.Limits() {
		rate = min(rate, l.Rate)
	}
	return max(1, int64(math.Ceil(2*rate*float64(intervalMs)/1000)))
}

// validityMs is how long a reservation may be spent after its answer arrived: three intervals
// (a missed tick or two do not interrupt local decisions), and at most half the shortest window,
// so that Redis still counts the reservation whenever it is spent: its answer arrives at most a
// sync timeout after Redis made it, and config checks that this is under half the window too.
func validityMs(p *algorithm.Policy, intervalMs int64) int64 {
	return min(3*intervalMs, p.ShortestWindowMs()/2)
}

func (b *hybridBackend) decide(c *call) (outcome, bool) {
	res, viaRedis, err := b.decideOnLease(c)
	if err != nil {
		// The lease could not be read or written (contention): Redis decides, exactly; the local
		// store would start from nothing.
		b.ps.logf(c.now, "floodgate: policy %s: lease: %v", b.ps.cfg.Name, err)
		viaRedis = true
	}
	if viaRedis {
		return b.remote.decide(c)
	}
	return outcome{res: res, lease: res.Allowed}, false
}

// decideOnLease decides a request on the key's lease; remote is set when it must be decided in
// Redis.
func (b *hybridBackend) decideOnLease(c *call) (res algorithm.Result, remote bool, err error) {
	h1, h2 := keyHashes(c.key)
	now := c.now
	mark, wantSend := false, false
	info, err := b.leases.UpdateHash(h1, now, b.ttlMs, func(cur []byte) ([]byte, bool) {
		var ls lease
		if cur != nil {
			ls.decode(cur)
		} else {
			ls.h1, ls.h2 = h1, h2
		}
		res, remote = ls.decideLease(b.policy, now, c.cost, c.draw, b.sync.intervalMs)
		wantSend = remote && ls.flight == 0 && ls.attempts >= sendAttempts
		if mark = !ls.tracked && ls.needsSync(); mark {
			ls.tracked = true
		}
		return ls.encode(b.sync.buf), true
	})
	if info.Evicted {
		_ = b.ps.m.evictions.Add(1)
	}
	if err != nil {
		return res, remote, err
	}
	if mark {
		if merr := b.sync.mark(b, b.leases.SlotOf(h1)); merr != nil {
			// The decision stands; a later request of the key marks it again.
			b.ps.logf(now, "floodgate: policy %s: marking a key for the sync: %v", b.ps.cfg.Name, merr)
			_ = b.updateLease(h1, now, func(ls *lease) bool { ls.tracked = false; return true })
		}
	}
	// Off the hot path (the request goes to Redis anyway): send the key's lease now, unless the
	// breaker stops every call but the tick's, or another worker sent it meanwhile.
	if wantSend && !b.sync.h.breaker.open(now) {
		var sent redislimit.Lease
		moved := false
		_ = b.updateLease(h1, now, func(ls *lease) bool {
			if moved = ls.flight == 0 && ls.attempts >= sendAttempts; moved {
				sent = ls.send(now)
				sent.Want = max(sent.Want, b.firstWant)
			}
			return moved
		})
		if moved {
			b.sync.sendNow(sentLease{b: b, h1: h1, h2: h2, at: now, lease: sent}, c.ev.stream)
		}
	}
	return res, remote, nil
}

// updateLease runs fn on the key's lease, if it still has one, and stores it when fn says so.
func (b *hybridBackend) updateLease(h1 uint64, now int64, fn func(*lease) bool) error {
	_, err := b.leases.UpdateHash(h1, now, b.ttlMs, func(cur []byte) ([]byte, bool) {
		if cur == nil {
			return nil, false
		}
		var ls lease
		ls.decode(cur)
		if !fn(&ls) {
			return nil, false
		}
		return ls.encode(cur), true
	})
	return err
}

// refundLease gives cost units back to the key's reservation (all or nothing: another policy
// rejected the request they were spent on).
func (b *hybridBackend) refundLease(key []byte, now, cost int64) {
	h1, _ := keyHashes(key)
	_ = b.updateLease(h1, now, func(ls *lease) bool {
		if ls.spent < cost {
			return false // spent before the last sync: reported to Redis already
		}
		ls.spent -= cost
		return true
	})
}
