package plugin

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/floodgate-proxy/floodgate/config"
	"github.com/floodgate-proxy/floodgate/internal/host"
	"github.com/floodgate-proxy/floodgate/redislimit"
	"github.com/floodgate-proxy/floodgate/store"
	"github.com/tidwall/gjson"
)

// syncer runs the hybrid backend's syncs. Every worker has one; the leader's does the work.
type syncer struct {
	h          *helper
	now        func() int64
	backends   []*hybridBackend // the policies it syncs
	intervalMs int64
	token      uint64 // this VM's name in the leader election
	leaderKey  string
	buf        []byte      // a lease being encoded
	sent       []sentLease // the leases of the tick being collected
	marked     []byte      // the bitmap of the policy being collected
	lastLogMs  int64
	m          struct{ syncs, failures, leases host.Metric }
}

// sentLease is one key's lease in a sync.
type sentLease struct {
	b      *hybridBackend
	h1, h2 uint64
	at     int64 // the lease's flight
	lease  redislimit.Lease
}

// A /pipeline call carries at most maxBatch leases, maxBatchBytes of body and
// redislimit.MaxPipelineRecords state records: the helper takes up to 500 commands, 64 KiB and
// that many records by default (about 250 EVALSHA leases, or 7 EVAL ones).
const (
	maxBatch      = 500
	maxBatchBytes = 60 << 10
)

func newSyncer(cfg *config.Config, h *helper, token uint64, now func() int64) (*syncer, error) {
	// One leader per set of hybrid policies: plugins sharing the prefix with other policies (Istio
	// gives every plugin of a proxy one vm_id) elect their own, which syncs their leases.
	var names []byte
	for _, p := range cfg.Policies {
		if p.Backend == config.BackendHybrid {
			names = append(append(names, p.Name...), 0)
		}
	}
	s := &syncer{h: h, now: now, intervalMs: int64(cfg.Redis.SyncIntervalMs), token: token, buf: make([]byte, leaseSize),
		leaderKey: cfg.SharedData.Prefix + ":hybrid:leader:" + strconv.FormatUint(store.Hash(names), 36)}
	for _, m := range []struct {
		dst  *host.Metric
		name string
	}{{&s.m.syncs, "syncs"}, {&s.m.failures, "sync_failures"}, {&s.m.leases, "leases"}} {
		var err error
		if *m.dst, err = host.DefineMetric(host.Counter, "floodgate.hybrid."+m.name); err != nil {
			return nil, fmt.Errorf("define metric %s: %w", m.name, err)
		}
	}
	if err := host.SetTickPeriod(cfg.Redis.SyncIntervalMs); err != nil {
		return nil, fmt.Errorf("set the tick period: %w", err)
	}
	return s, nil
}

// sendNow sends one lease outside the tick, from the root context.
func (s *syncer) sendNow(sl sentLease, stream uint32) {
	s.h.fromRoot(stream, func() { s.send([]sentLease{sl}, false) })
}

// mark flags slots of b for the leader's next sync, in one write.
func (s *syncer) mark(b *hybridBackend, slots ...uint32) error {
	return casUpdate(b.dirtyKey, func(cur []byte) ([]byte, bool) {
		bits := bitmapOf(cur, b.leases.Slots())
		write := false
		for _, slot := range slots {
			if int(slot/8) >= len(bits) {
				continue
			}
			if bits[slot/8]&(1<<(slot%8)) == 0 {
				bits[slot/8] |= 1 << (slot % 8)
				write = true
			}
		}
		return bits, write
	})
}

// bitmapOf returns cur as a bitmap of slots bits, or a new empty one.
func bitmapOf(cur []byte, slots uint32) []byte {
	if n := int(slots+7) / 8; len(cur) != n {
		return make([]byte, n)
	}
	return cur
}

// lead tells whether this VM leads the syncs, taking the lead when the leader went quiet for
// three intervals.
func (s *syncer) lead(now int64) bool {
	mine := false
	_ = casUpdate(s.leaderKey, func(cur []byte) ([]byte, bool) {
		if len(cur) == 16 {
			token, until := binary.LittleEndian.Uint64(cur), int64(binary.LittleEndian.Uint64(cur[8:]))
			if token != s.token && until > now {
				mine = false
				return nil, false
			}
		}
		mine = true
		next := binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, s.token), uint64(now+3*s.intervalMs))
		return next, true
	})
	return mine
}

// tick runs on every VM's timer: the leader sends the leases of every key that has something to
// sync, in one /pipeline call (or as many as the helper's limits need).
func (s *syncer) tick() {
	now := s.now()
	if !s.lead(now) {
		return
	}
	// Syncs go on while the breaker is open: one call a tick, off the request path, and what
	// workers admitted must reach Redis before their reservations leave its window. A sync that
	// succeeds closes the breaker.
	s.sent = s.sent[:0]
	for _, b := range s.backends {
		s.collect(b, now)
	}
	s.send(s.sent, false)
}

// collect takes the marked slots of b and, for every key with something to sync and no lease in
// flight, moves its lease in flight (a lease whose answer is overdue is declared lost first).
func (s *syncer) collect(b *hybridBackend, now int64) {
	// The host answers every call by its timeout: a lease in flight for longer (plus a tick of
	// slack) will not be answered here (an earlier leader's, or one from before a reload).
	overdue := int64(s.h.cfg.SyncTimeoutMs) + s.intervalMs
	marked := s.marked[:0]
	_ = casUpdate(b.dirtyKey, func(cur []byte) ([]byte, bool) {
		marked = append(marked[:0], cur...)
		if !slices.ContainsFunc(cur, func(c byte) bool { return c != 0 }) {
			return nil, false
		}
		return make([]byte, len(cur)), true
	})
	slots := b.unmarked // slots a failed write could not mark again last tick
	b.unmarked = nil
	for i, m := range marked {
		for bit := 0; m != 0 && bit < 8; bit++ {
			if m&(1<<bit) != 0 {
				slots = append(slots, uint32(i*8+bit))
			}
		}
	}
	still := make([]uint32, 0, 8)
	for _, slot := range slots {
		if slot >= b.leases.Slots() {
			continue // marked under a configuration with more slots
		}
		n := len(s.sent)
		keep := false
		err := b.leases.UpdateSlot(slot, now, b.ttlMs, func(live [][]byte) bool {
			s.sent, keep = s.sent[:n], false
			write := false
			for _, p := range live {
				var ls lease
				ls.decode(p)
				if !ls.needsSync() {
					if ls.tracked || ls.attempts > 0 {
						ls.tracked, ls.attempts, write = false, 0, true
						ls.encode(p)
					}
					continue
				}
				keep = true
				if ls.flight != 0 {
					if now-ls.flight <= overdue {
						continue
					}
					ls.lost()
				}
				write = true
				s.sent = append(s.sent, sentLease{b: b, h1: ls.h1, h2: ls.h2, at: now, lease: ls.send(now)})
				ls.encode(p)
			}
			return write
		})
		if err != nil {
			s.sent, keep = s.sent[:n], true
		}
		if keep {
			still = append(still, slot)
		}
	}
	s.marked = marked
	if len(still) == 0 {
		return
	}
	if err := s.mark(b, still...); err != nil {
		b.unmarked = still // their leases stay tracked: the next tick visits them anyway
		b.ps.logf(now, "floodgate: policy %s: marking slots for the next sync: %v", b.ps.cfg.Name, err)
	}
}

// send posts leases in as many /pipeline calls as the helper's limits need. Leases Redis answers
// NOSCRIPT for (a node that does not know the script yet) are sent once more with EVAL; the others
// are applied. A call that cannot be made ends its leases (lost).
func (s *syncer) send(leases []sentLease, retried bool) {
	body := []byte{'['}
	start, records := 0, 0
	for i, sl := range leases {
		script := redislimit.ScriptFor(sl.b.policy)
		verb, name := "EVALSHA", script.SHA
		if retried {
			verb, name = "EVAL", script.Source
		}
		cmd := command(verb, name, s.h.redisKey(sl.b.ns, sl.h1, sl.h2), redislimit.LeaseArgs(sl.b.policy, sl.lease, redislimit.Call{NowMs: -1}))
		r := redislimit.Records(sl.b.policy)
		if i > start && (i-start == maxBatch || len(body)+len(cmd)+2 > maxBatchBytes || records+r > redislimit.MaxPipelineRecords) {
			s.call(leases[start:i], append(body, ']'), retried)
			body, start, records = body[:1], i, 0
		}
		records += r
		if i > start {
			body = append(body, ',')
		}
		body = append(body, cmd...)
	}
	if start < len(leases) {
		s.call(leases[start:], append(body, ']'), retried)
	}
}

// call posts one pipeline of the leases of batch.
func (s *syncer) call(batch []sentLease, body []byte, retried bool) {
	batch = slices.Clone(batch) // the caller's slice is reused before the answer comes
	_ = s.m.syncs.Add(1)
	_ = s.m.leases.Add(int64(len(batch)))
	err := s.h.post(true, body, s.h.cfg.SyncTimeoutMs, func(numHeaders, bodySize int) {
		grants, noscript, err := readGrants(numHeaders, bodySize, len(batch))
		if !retried && noscript != nil {
			var again, rest []sentLease
			var restGrants []*redislimit.Grant
			for i, sl := range batch {
				if noscript[i] {
					again = append(again, sl)
				} else {
					rest, restGrants = append(rest, sl), append(restGrants, grants[i])
				}
			}
			s.send(again, true)
			if !slices.Contains(restGrants, nil) {
				err = nil // every failure was a NOSCRIPT
			}
			batch, grants = rest, restGrants
		}
		s.h.breaker.record(err == nil, s.now())
		s.applyAll(batch, grants, err, s.now())
	})
	if err != nil {
		s.h.breaker.record(false, s.now())
		s.applyAll(batch, nil, err, s.now())
	}
}

// readGrants reads a pipeline's answers: a nil grant is a lease that failed, and err says why
// (the first reason); noscript, when not nil, marks the leases Redis answered NOSCRIPT for.
func readGrants(numHeaders, bodySize, n int) (grants []*redislimit.Grant, noscript []bool, err error) {
	status, body, err := helperAnswer(numHeaders, bodySize)
	if err != nil {
		return nil, nil, err
	}
	if status != "200" {
		return nil, nil, fmt.Errorf("helper answered %s", status)
	}
	answers := gjson.ParseBytes(body)
	if !answers.IsArray() || len(answers.Array()) != n {
		return nil, nil, fmt.Errorf("helper answered %.80q", body)
	}
	grants = make([]*redislimit.Grant, n)
	ints := make([]int64, 0, 8)
	for i, a := range answers.Array() {
		if msg := a.Get("error"); msg.Exists() {
			if strings.HasPrefix(msg.String(), "NOSCRIPT") {
				if noscript == nil {
					noscript = make([]bool, n)
				}
				noscript[i] = true
			}
			if err == nil {
				err = fmt.Errorf("helper answered: %s", msg.String())
			}
			continue
		}
		ints, _ = resultInts(a, ints[:0]) // not an array: no values, which GrantOf refuses
		g, gerr := redislimit.GrantOf(ints)
		if gerr != nil {
			if err == nil {
				err = gerr
			}
			continue
		}
		grants[i] = &g
	}
	return grants, noscript, err
}

// applyAll applies the answers to a batch: a granted key gets its new reservation; a failed one
// is lost (see lease.lost). An answer to a lease no longer in flight (declared lost meanwhile) is
// ignored.
func (s *syncer) applyAll(batch []sentLease, grants []*redislimit.Grant, err error, now int64) {
	if err != nil {
		_ = s.m.failures.Add(1)
		if now-s.lastLogMs >= 1000 {
			s.lastLogMs = now
			host.Log(host.LevelWarn, "floodgate: hybrid sync failed (reservations lapse; the failure mode applies until a sync succeeds): "+err.Error())
		}
	}
	for i, sl := range batch {
		var g *redislimit.Grant
		if i < len(grants) {
			g = grants[i]
		}
		b := sl.b
		// A lease evicted meanwhile is not updated: Redis lets its reservation age out.
		uerr := b.updateLease(sl.h1, now, func(ls *lease) bool {
			if ls.flight != sl.at {
				return false
			}
			if g == nil {
				ls.lost()
			} else {
				ls.granted(g, now, b.validityMs)
			}
			return true
		})
		if uerr != nil {
			b.ps.logf(now, "floodgate: policy %s: applying a sync: %v", b.ps.cfg.Name, uerr)
		}
	}
}
