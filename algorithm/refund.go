package algorithm

// Refund gives back cost units admitted at atMs, for a request admitted here and then turned down
// elsewhere (by Redis, or by another policy of an all-or-nothing request), at nowMs. It returns
// the next state (in dst's storage when it has StateSize() capacity) and whether it changed.
//
// Sliding windows: the units leave the bucket the admission went into (the oldest live bucket
// whose latest request is no earlier than atMs), as the hybrid backend's release does; units that
// already left the window are gone anyway. The suppressed strategy records the attempt as denied
// at now instead, since every attempt feeds its perceived rate. Meters: every limit's TAT moves back by cost × T,
// never below now (a meter is never fuller than full). A state that is not a valid state of p
// (another key's, other limits) is left alone.
func (p *Policy) Refund(dst, old []byte, nowMs, atMs, cost int64) ([]byte, bool) {
	if cost < 1 {
		cost = 1
	}
	if p.strategy.Meter() {
		now := nowMs * 1000
		if !p.validMeter(old) {
			return old, false
		}
		b, _ := p.loadMeter(dst, old)
		changed := false
		for i := range p.limits {
			c := &p.limits[i]
			if tat := tatOf(b, c); tat > now {
				setTat(b, c, max(tat-cost*c.intervalUs, now))
				changed = true
			}
		}
		return b, changed
	}
	if !p.valid(old) {
		return old, false
	}
	st, base, now, _ := p.prepare(dst, old, nowMs)
	changed := false
	for i := range p.limits {
		r := st.ring(i)
		if atMs > now-r.c.WindowMs && r.sumA() > 0 {
			release(r, base, atMs, cost)
			if p.strategy == Suppressed {
				add(r, base, now, cost, true)
			}
			changed = true
		}
	}
	return st.b, changed
}
