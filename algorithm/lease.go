package algorithm

// Lease is what a proxy of the hybrid backend sends for one key at a sync: it gives back a
// reservation, reports what it admitted and denied against it, and asks for the next one.
type Lease struct {
	// Release units were reserved for this proxy at ReleaseAtMs; it gives them back.
	Release, ReleaseAtMs int64
	// Used and Denied are the units the proxy admitted and denied locally since that reservation.
	Used, Denied int64
	// Rejected are the units of Denied the proxy rejected for lack of room (quota exhausted, hard
	// limit), not shed by the suppressed strategy's draw: with a block, they start it.
	Rejected int64
	// UsedAtMs (no earlier than the last admission; 0 for now) is when Used are counted: the
	// earlier, the sooner they leave the window.
	UsedAtMs int64
	// Want is how many units to reserve for the proxy's next local decisions.
	Want int64
}

// Grant is the answer to a Lease.
type Grant struct {
	// Units are reserved for the proxy (0 to Want), counted as accepted at AtMs.
	Units, AtMs int64
	// The tightest limit after the reservation, as in Result.
	Limit, WindowMs, Remaining, ResetAfterMs int64
	// RetryAfterMs is the time until one unit fits, when nothing is left to reserve.
	RetryAfterMs int64
	// SuppressionFactor applies to the proxy's local decisions (suppressed strategy).
	SuppressionFactor float64
}

// Lease applies a hybrid proxy's lease to the key's state at nowMs, as Redis does (redislimit's
// scripts mirror it): no request is decided. It returns the next state (in dst's storage when it
// has StateSize() capacity), the grant, and whether the state changed.
//
// Sliding windows (absolute, suppressed): the unused part of the reservation (Release - Used)
// is taken back from the oldest live bucket whose latest request is no earlier than
// ReleaseAtMs, when ReleaseAtMs is still inside the limit's window (a reservation gone from the
// window took its units along); Used are counted at UsedAtMs (clamped to [base, now]) and Denied
// at now; then up to Want units are reserved at now: up to the quota, or for suppressed above
// the soft quota up to the hard one (spent under the suppression factor). What the release
// freed is granted back whatever the caps say: the proxy may have spent it while the lease
// travelled, and granting it only relabels units already counted.
//
// Meters (GCRA, TokenBucket): units are charged when they are reserved, so Used and Denied
// change nothing; the unused part of the reservation comes back, but never more than the part
// of the reservation that would not have refilled since ReleaseAtMs.
//
// Blocks: a lease with Rejected > 0 starts the policy's block (unless one runs); a blocked key
// is granted nothing, not even what the release freed, and RetryAfterMs is at least the rest of
// the block. What the lease reports is counted all the same.
func (p *Policy) Lease(dst, old []byte, nowMs int64, l Lease) ([]byte, Grant, bool) {
	if p.strategy.Meter() {
		b, _ := p.loadMeter(dst, old)
		g, changed := p.leaseMeter(b, nowMs, l)
		return b, g, changed
	}
	st, base, now, _ := p.prepare(dst, old, nowMs)
	usedAt := l.UsedAtMs
	if usedAt <= 0 || usedAt > now {
		usedAt = now
	}
	usedAt = max(usedAt, base)
	g := Grant{AtMs: now}
	room, freed := l.Want, max(l.Release-l.Used, 0)
	suppressed := p.strategy == Suppressed
	for i := range p.limits {
		r := st.ring(i)
		if l.Release > 0 && l.ReleaseAtMs > now-r.c.WindowMs {
			release(r, base, l.ReleaseAtMs, l.Release)
		}
		if l.Used > 0 {
			addAt(r, base, usedAt, l.Used)
		}
		if l.Denied > 0 && suppressed { // denials only feed the suppression factor
			add(r, base, now, l.Denied, true)
		}
		capacity := r.c.Quota
		if suppressed && r.sumA()+1 > r.c.Quota {
			capacity = r.c.hard
			if r.sumA()+1 <= capacity {
				g.SuppressionFactor = max(g.SuppressionFactor, suppressionFactor(r, base, now))
			}
		}
		room = min(room, max(capacity-r.sumA(), 0))
		if r.sumA()+1 > capacity {
			retry, _ := fitsAfter(r, 0, base, now, r.sumA(), 1, capacity)
			g.RetryAfterMs = max(g.RetryAfterMs, retry)
		}
	}
	g.Units = max(min(l.Want, max(room, freed)), 0)
	rest, started := p.leaseBlock(st.b, now, l)
	if rest > 0 {
		g.Units, g.RetryAfterMs = 0, max(g.RetryAfterMs, rest)
	}
	if g.Units > 0 {
		for i := range p.limits {
			r := st.ring(i)
			add(r, base, now, g.Units, false)
			if suppressed && r.sumA() > r.c.Quota {
				g.SuppressionFactor = max(g.SuppressionFactor, suppressionFactor(r, base, now))
			}
		}
	}
	var res Result
	p.report(st, base, now, &res)
	g.Limit, g.WindowMs, g.Remaining, g.ResetAfterMs = res.Limit, res.WindowMs, res.Remaining, res.ResetAfterMs
	return st.b, g, l.Release > 0 || l.Used > 0 || l.Denied > 0 || g.Units > 0 || started
}

// release takes back up to units accepted units from the oldest bucket whose latest request is
// no earlier than at: the bucket the reservation went into (buckets are in time order).
func release(r ring, base, at, units int64) {
	for k := 0; k < r.n(); k++ {
		if base+r.end(k) < at {
			continue
		}
		rec := r.at(k)
		c := min(int64(le.Uint32(rec[8:])), units)
		le.PutUint32(rec[8:], uint32(int64(le.Uint32(rec[8:]))-c))
		r.setSumA(r.sumA() - c)
		return
	}
}

// addAt counts c accepted units at time at (<= now): into the newest bucket unless a new one can
// start there; a bucket's end never moves back, so units are never counted short.
func addAt(r ring, base, at, c int64) {
	n := r.n()
	if n == 0 || (at-(base+r.start(n-1)) >= r.c.GroupMs && at >= base+r.end(n-1) && n < r.c.buckets) {
		rec := r.at(n)
		le.PutUint32(rec, uint32(at-base))
		le.PutUint32(rec[4:], uint32(at-base))
		clear(rec[8:r.rec])
		n++
		r.setN(n)
	}
	rec := r.at(n - 1)
	if at-base > int64(le.Uint32(rec[4:])) {
		le.PutUint32(rec[4:], uint32(at-base))
	}
	le.PutUint32(rec[8:], uint32(clampU32(int64(le.Uint32(rec[8:]))+c)))
	r.setSumA(r.sumA() + c)
}
