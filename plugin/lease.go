package plugin

import (
	"encoding/binary"
	"math"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/redislimit"
	"github.com/floodgate-proxy/floodgate/store"
)

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
	// rejected units were turned down here for lack of room since the last sync: Redis starts
	// the policy's block on them (block_for).
	rejected int64
	tracked  bool // the key's slot is marked for the leader
}

const leaseSize = 21*8 + 1

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
	l.rejected = u(20)
	l.tracked = b[21*8] == 1
}

func (l *lease) encode(b []byte) []byte {
	b = b[:leaseSize]
	for i, v := range []int64{int64(l.h1), int64(l.h2), l.reserved, l.spent, l.reservedAt, l.denied, l.attempts,
		l.validUntil, l.exhaustedUntil, l.limit, l.windowMs, l.remaining, l.resetAt, int64(math.Float64bits(l.sf)),
		l.flight, l.flightUsed, l.flightDenied, l.lastSpentAt, l.redisOffset, l.attemptsAt, l.rejected} {
		binary.LittleEndian.PutUint64(b[i*8:], uint64(v))
	}
	b[21*8] = 0
	if l.tracked {
		b[21*8] = 1
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
	return l.reserved > 0 || l.spent > 0 || l.denied > 0 || l.rejected > 0 || l.attempts >= hotAttempts || l.flight != 0
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
	sent := redislimit.Lease{Release: l.reserved, ReleaseAtMs: l.reservedAt, Used: l.spent, Denied: l.denied, Rejected: l.rejected,
		Want: max(want, left)}
	if l.spent > 0 {
		sent.UsedAtMs = l.lastSpentAt + l.redisOffset
	}
	l.flight, l.flightUsed, l.flightDenied = now, l.spent, l.denied
	l.reserved, l.spent, l.denied, l.rejected, l.attempts, l.attemptsAt = left, 0, 0, 0, 0, now
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
		if p.BlockMs() > 0 {
			l.rejected += cost
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
