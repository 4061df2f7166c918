package plugin

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/config"
	"github.com/floodgate-proxy/floodgate/internal/host"
	"github.com/floodgate-proxy/floodgate/redislimit"
	"github.com/floodgate-proxy/floodgate/store"
	"github.com/tidwall/gjson"
)

// The hybrid backend decides locally on reservations made in Redis, and syncs on a tick.
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

// lease is one key's hybrid state in the proxy's shared data (leaseSize bytes, little endian).
type lease struct {
	h1, h2 uint64 // the key's hashes: the Redis key, found again by the leader
	// reserved units were granted at reservedAt (Redis time); spent of them are admitted.
	reserved, spent, reservedAt int64
	// denied units since the last sync, and attempts (all units asked) since attemptsAt: the last
	// sync, or the start of the interval they were counted in.
	denied, attempts, attemptsAt int64
	// validUntil ends the reservation's use; exhaustedUntil is when the last sync said one unit
	// would fit again, when it said none did (local times, ms).
	validUntil, exhaustedUntil int64
	// What the last sync said about the window, for the rate-limit headers.
	limit, windowMs, remaining, resetAt int64
	sf                                  float64 // suppression factor for local decisions
	// The lease in flight: sent at flight (local ms, 0 when none), carrying flightUsed and
	// flightDenied, which are sent again if its answer never comes.
	flight, flightUsed, flightDenied int64
	// lastSpentAt is the local time of the last admission; redisOffset bounds Redis's clock minus
	// this proxy's from above (a grant's Redis time minus its lease's send time), so that
	// lastSpentAt+redisOffset is a Redis time no earlier than any admission being reported.
	lastSpentAt, redisOffset int64
	tracked                  bool // the key's slot is marked for the leader
}

const leaseSize = 20*8 + 1

func (l *lease) decode(b []byte) {
	u := func(i int) int64 { return int64(binary.LittleEndian.Uint64(b[i*8:])) }
	l.h1, l.h2 = uint64(u(0)), uint64(u(1))
	l.reserved, l.spent, l.reservedAt = u(2), u(3), u(4)
	l.denied, l.attempts = u(5), u(6)
	l.validUntil, l.exhaustedUntil = u(7), u(8)
	l.limit, l.windowMs, l.remaining, l.resetAt = u(9), u(10), u(11), u(12)
	l.sf = math.Float64frombits(uint64(u(13)))
	l.flight, l.flightUsed, l.flightDenied = u(14), u(15), u(16)
	l.lastSpentAt, l.redisOffset, l.attemptsAt = u(17), u(18), u(19)
	l.tracked = b[20*8] == 1
}

func (l *lease) encode(b []byte) []byte {
	b = b[:leaseSize]
	for i, v := range []int64{int64(l.h1), int64(l.h2), l.reserved, l.spent, l.reservedAt, l.denied, l.attempts,
		l.validUntil, l.exhaustedUntil, l.limit, l.windowMs, l.remaining, l.resetAt, int64(math.Float64bits(l.sf)),
		l.flight, l.flightUsed, l.flightDenied, l.lastSpentAt, l.redisOffset, l.attemptsAt} {
		binary.LittleEndian.PutUint64(b[i*8:], uint64(v))
	}
	b[20*8] = 0
	if l.tracked {
		b[20*8] = 1
	}
	return b
}

// Keys asked for fewer than hotAttempts units in a sync interval are cold: reserving for them
// would cost more Lua calls (a reservation, then its release) than deciding their few requests
// in Redis. A key asked for sendAttempts units without a reservation sends its lease at once.
const (
	hotAttempts  = 2
	sendAttempts = 4
)

// needsSync tells whether the leader has something to send for the key: a cold key's workers do
// not even mark it.
func (l *lease) needsSync() bool {
	return l.reserved > 0 || l.spent > 0 || l.denied > 0 || l.attempts >= hotAttempts || l.flight != 0
}

// send moves the lease in flight and returns what to send: the reservation to give back, what
// was admitted and denied against it, and the next reservation's size: twice the demand since
// the last sync, and at least what is left, which workers may spend while the answer travels
// (Redis can always grant that much back, since the release frees it). A key gone cold since the
// last sync gives everything back and spends nothing meanwhile, so its syncs stop.
func (l *lease) send(now int64) redislimit.Lease {
	left, want := max(l.reserved-l.spent, 0), 2*l.attempts
	if l.attempts < hotAttempts {
		left, want = 0, 0
	}
	sent := redislimit.Lease{Release: l.reserved, ReleaseAtMs: l.reservedAt, Used: l.spent, Denied: l.denied,
		Want: max(want, left)}
	if l.spent > 0 {
		sent.UsedAtMs = l.lastSpentAt + l.redisOffset
	}
	l.flight, l.flightUsed, l.flightDenied = now, l.spent, l.denied
	l.reserved, l.spent, l.denied, l.attempts, l.attemptsAt = left, 0, 0, 0, now
	return sent
}

// lost ends a lease in flight whose answer will not be applied. Whether Redis applied it is
// unknown, so its reservation is never released (Redis lets it age out) and what it carried is
// sent again (counting it twice at worst): both err on the side of admitting less. The key is
// decided in Redis, or by the failure mode, until a sync succeeds.
func (l *lease) lost() {
	l.reserved, l.validUntil = 0, 0
	l.spent += l.flightUsed
	l.denied += l.flightDenied
	l.flight, l.flightUsed, l.flightDenied = 0, 0, 0
}

// granted applies Redis's answer to the lease in flight, received at now; what workers admitted
// meanwhile is charged to the new reservation.
func (l *lease) granted(g *redislimit.Grant, now, validityMs int64) {
	l.redisOffset = g.AtMs - l.flight
	l.flight, l.flightUsed, l.flightDenied = 0, 0, 0
	l.reserved, l.reservedAt, l.validUntil = g.Units, g.AtMs, now+validityMs
	l.exhaustedUntil = 0
	if g.Units == 0 && g.RetryAfterMs > 0 {
		l.exhaustedUntil = now + g.RetryAfterMs
	}
	l.limit, l.windowMs, l.remaining, l.resetAt = g.Limit, g.WindowMs, g.Remaining, now+g.ResetAfterMs
	l.sf = g.SuppressionFactor
}

// keyHashes are the two hashes a key's Redis name is made of.
func keyHashes(key []byte) (uint64, uint64) {
	h2 := uint64(14695981039346656037) ^ 0xff
	h2 *= 1099511628211
	for _, c := range key {
		h2 ^= uint64(c)
		h2 *= 1099511628211
	}
	return store.Hash(key), h2
}

// decideLease decides a request on the key's lease, in place in buf. remote is set when the
// request must be decided in Redis instead; the lease then only counts the attempt.
func (l *lease) decideLease(p *algorithm.Policy, now, cost int64, draw float64, intervalMs int64) (res algorithm.Result, remote bool) {
	if now-l.attemptsAt >= intervalMs && !l.tracked {
		l.attempts, l.attemptsAt = 0, now // a key no sync counts for: demand per interval
	}
	l.attempts += cost
	valid := now < l.validUntil
	res = algorithm.Result{Limit: l.limit, WindowMs: l.windowMs, Decider: -1,
		ResetAfterMs: max(l.resetAt-now, 0), Remaining: max(l.remaining+l.reserved-l.spent-cost, 0)}
	suppressed := p.Strategy() == algorithm.Suppressed
	switch {
	case valid && l.spent+cost <= l.reserved:
		if suppressed && l.sf > 0 && draw < l.sf {
			l.denied += cost
			res.Reason, res.Suppressed, res.SuppressionFactor = algorithm.ReasonSuppressed, true, l.sf
			res.RetryAfterMs = intervalMs
			return res, false
		}
		l.spent, l.lastSpentAt = l.spent+cost, max(l.lastSpentAt, now) // now may be older than another worker's
		res.Allowed, res.SuppressionFactor = true, l.sf
		return res, false
	case l.limit > 0 && cost > l.limit:
		return res, true // Redis tells why (the cost may exceed the quota)
	case now < l.exhaustedUntil || (valid && l.exhaustedUntil == 0 && l.remaining < cost):
		// Nothing left here, and the last sync said nothing was left in Redis either: until the
		// time it said one unit would fit again (then Redis decides, and a lease goes at once),
		// or, when others held what was left, until the next sync.
		if suppressed {
			l.denied += cost
		}
		res.Reason = algorithm.ReasonQuotaExhausted
		if suppressed {
			res.Reason = algorithm.ReasonHardLimit
		}
		res.Remaining, res.RetryAfterMs = 0, max(l.exhaustedUntil-now, intervalMs)
		return res, false
	}
	return res, true
}

// decideHybrid decides a request of a hybrid policy on its lease; remote is set when it must be
// decided in Redis.
func (l *limiter) decideHybrid(ps *policyState, key []byte, now, cost int64, stream uint32) (res algorithm.Result, remote bool, err error) {
	h1, h2 := keyHashes(key)
	draw := l.opts.Rand()
	mark, wantSend := false, false
	info, err := ps.leases.UpdateHash(h1, now, ps.ttlMs, func(cur []byte) ([]byte, bool) {
		var ls lease
		if cur != nil {
			ls.decode(cur)
		} else {
			ls.h1, ls.h2 = h1, h2
		}
		res, remote = ls.decideLease(ps.cfg.Compiled, now, cost, draw, l.sync.intervalMs)
		wantSend = remote && ls.flight == 0 && ls.attempts >= sendAttempts
		if mark = !ls.tracked && ls.needsSync(); mark {
			ls.tracked = true
		}
		return ls.encode(l.sync.buf), true
	})
	if info.Evicted {
		_ = ps.m.evictions.Add(1)
	}
	if err != nil {
		return res, remote, err
	}
	if mark {
		if merr := l.sync.mark(ps, ps.leases.SlotOf(h1)); merr != nil {
			// The decision stands; a later request of the key marks it again.
			ps.logf(now, "floodgate: policy %s: marking a key for the sync: %v", ps.cfg.Name, merr)
			_ = updateLease(ps, h1, now, func(ls *lease) bool { ls.tracked = false; return true })
		}
	}
	// Off the hot path (the request goes to Redis anyway): send the key's lease now, unless the
	// breaker stops every call but the tick's, or another worker sent it meanwhile.
	if wantSend && !l.remote.breakerOpen(now) {
		var sent redislimit.Lease
		moved := false
		_ = updateLease(ps, h1, now, func(ls *lease) bool {
			if moved = ls.flight == 0 && ls.attempts >= sendAttempts; moved {
				sent = ls.send(now)
				sent.Want = max(sent.Want, ps.firstWant)
			}
			return moved
		})
		if moved {
			l.sync.sendNow(sentLease{ps: ps, h1: h1, h2: h2, at: now, lease: sent}, l.opts.NowMs, stream)
		}
	}
	return res, remote, nil
}

// updateLease runs fn on the key's lease, if it still has one, and stores it when fn says so.
func updateLease(ps *policyState, h1 uint64, now int64, fn func(*lease) bool) error {
	_, err := ps.leases.UpdateHash(h1, now, ps.ttlMs, func(cur []byte) ([]byte, bool) {
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

// sendNow sends one lease outside the tick, from the root context (a call made by a request's
// context would be cancelled with the request), then makes the request's context current again.
func (s *syncer) sendNow(sl sentLease, now func() int64, stream uint32) {
	if s.rootID != 0 {
		_ = host.SetEffectiveContext(s.rootID)
		defer host.SetEffectiveContext(stream)
	}
	s.send([]sentLease{sl}, false, now)
}

// syncer runs the hybrid backend's syncs. Every worker has one; the leader's does the work.
type syncer struct {
	r          *remote
	intervalMs int64
	token      uint64 // this VM's name in the leader election
	rootID     uint32 // the root context, which makes the calls
	leaderKey  string
	headers    [][2]string
	buf        []byte      // a lease being encoded
	sent       []sentLease // the leases of the tick being collected
	marked     []byte      // the bitmap of the policy being collected
	lastLogMs  int64
	m          struct{ syncs, failures, leases host.Metric }
}

// sentLease is one key's lease in a sync.
type sentLease struct {
	ps     *policyState
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

func newSyncer(cfg *config.Config, r *remote, token uint64) (*syncer, error) {
	// One leader per set of hybrid policies: plugins sharing the prefix with other policies (Istio
	// gives every plugin of a proxy one vm_id) elect their own, which syncs their leases.
	var names []byte
	for _, p := range cfg.Policies {
		if p.Backend == config.BackendHybrid {
			names = append(append(names, p.Name...), 0)
		}
	}
	s := &syncer{r: r, intervalMs: int64(cfg.Redis.SyncIntervalMs), token: token, buf: make([]byte, leaseSize),
		leaderKey: cfg.SharedData.Prefix + ":hybrid:leader:" + strconv.FormatUint(store.Hash(names), 36)}
	for _, h := range r.headers {
		if h[0] == ":path" {
			h[1] = "/pipeline"
		}
		s.headers = append(s.headers, h)
	}
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

// mark flags slots of ps for the leader's next sync, in one write.
func (s *syncer) mark(ps *policyState, slots ...uint32) error {
	return casUpdate(ps.dirtyKey, func(cur []byte) ([]byte, bool) {
		bits := bitmapOf(cur, ps.leases.Slots())
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
func (l *limiter) tick() {
	s := l.sync
	if s == nil {
		return
	}
	now := l.opts.NowMs()
	if !s.lead(now) {
		return
	}
	// Syncs go on while the breaker is open: one call a tick, off the request path, and what
	// workers admitted must reach Redis before their reservations leave its window. A sync that
	// succeeds closes the breaker.
	s.sent = s.sent[:0]
	for _, ps := range l.policies {
		if ps.cfg.Backend == config.BackendHybrid {
			l.collect(ps, now)
		}
	}
	s.send(s.sent, false, l.opts.NowMs)
}

// collect takes the marked slots of ps and, for every key with something to sync and no lease in
// flight, moves its lease in flight (a lease whose answer is overdue is declared lost first).
func (l *limiter) collect(ps *policyState, now int64) {
	s := l.sync
	// The host answers every call by its timeout: a lease in flight for longer (plus a tick of
	// slack) will not be answered here (an earlier leader's, or one from before a reload).
	overdue := int64(l.remote.cfg.SyncTimeoutMs) + s.intervalMs
	marked := s.marked[:0]
	_ = casUpdate(ps.dirtyKey, func(cur []byte) ([]byte, bool) {
		marked = append(marked[:0], cur...)
		if !slices.ContainsFunc(cur, func(b byte) bool { return b != 0 }) {
			return nil, false
		}
		return make([]byte, len(cur)), true
	})
	slots := ps.unmarked // slots a failed write could not mark again last tick
	ps.unmarked = nil
	for i, b := range marked {
		for bit := 0; b != 0 && bit < 8; bit++ {
			if b&(1<<bit) != 0 {
				slots = append(slots, uint32(i*8+bit))
			}
		}
	}
	still := make([]uint32, 0, 8)
	for _, slot := range slots {
		if slot >= ps.leases.Slots() {
			continue // marked under a configuration with more slots
		}
		n := len(s.sent)
		keep := false
		err := ps.leases.UpdateSlot(slot, now, ps.ttlMs, func(live [][]byte) bool {
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
				s.sent = append(s.sent, sentLease{ps: ps, h1: ls.h1, h2: ls.h2, at: now, lease: ls.send(now)})
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
	if err := s.mark(ps, still...); err != nil {
		ps.unmarked = still // their leases stay tracked: the next tick visits them anyway
		ps.logf(now, "floodgate: policy %s: marking slots for the next sync: %v", ps.cfg.Name, err)
	}
}

// send posts leases in as many /pipeline calls as the helper's limits need. Leases Redis answers
// NOSCRIPT for (a node that does not know the script yet) are sent once more with EVAL; the others
// are applied. A call that cannot be made ends its leases (lost).
func (s *syncer) send(leases []sentLease, retried bool, now func() int64) {
	verb, script := "EVALSHA", redislimit.ScriptSHA
	if retried {
		verb, script = "EVAL", redislimit.Script
	}
	body := []byte{'['}
	start, records := 0, 0
	for i, sl := range leases {
		cmd := command(verb, script, s.r.redisKey(sl.ps.cfg.Name, sl.h1, sl.h2), redislimit.LeaseArgs(sl.ps.cfg.Compiled, sl.lease, -1))
		r := redislimit.Records(sl.ps.cfg.Compiled)
		if i > start && (i-start == maxBatch || len(body)+len(cmd)+2 > maxBatchBytes || records+r > redislimit.MaxPipelineRecords) {
			s.call(leases[start:i], append(body, ']'), retried, now)
			body, start, records = body[:1], i, 0
		}
		records += r
		if i > start {
			body = append(body, ',')
		}
		body = append(body, cmd...)
	}
	if start < len(leases) {
		s.call(leases[start:], append(body, ']'), retried, now)
	}
}

// call posts one pipeline of the leases of batch.
func (s *syncer) call(batch []sentLease, body []byte, retried bool, now func() int64) {
	batch = slices.Clone(batch) // the caller's slice is reused before the answer comes
	_ = s.m.syncs.Add(1)
	_ = s.m.leases.Add(int64(len(batch)))
	_, err := host.HTTPCall(s.r.cfg.Cluster, s.headers, body, s.r.cfg.SyncTimeoutMs, func(numHeaders, bodySize, _ int) {
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
			s.send(again, true, now)
			if !slices.Contains(restGrants, nil) {
				err = nil // every failure was a NOSCRIPT
			}
			batch, grants = rest, restGrants
		}
		s.r.record(err == nil, now())
		s.applyAll(batch, grants, err, now())
	})
	if err != nil {
		s.r.record(false, now())
		s.applyAll(batch, nil, err, now())
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
		ps := sl.ps
		// A lease evicted meanwhile is not updated: Redis lets its reservation age out.
		uerr := updateLease(ps, sl.h1, now, func(ls *lease) bool {
			if ls.flight != sl.at {
				return false
			}
			if g == nil {
				ls.lost()
			} else {
				ls.granted(g, now, ps.validityMs)
			}
			return true
		})
		if uerr != nil {
			ps.logf(now, "floodgate: policy %s: applying a sync: %v", ps.cfg.Name, uerr)
		}
	}
}
