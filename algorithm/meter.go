package algorithm

import (
	"fmt"
	"hash/fnv"
)

// A meter (GCRA, TokenBucket) keeps, per limit, one theoretical arrival time TAT in microseconds:
// the time at which the meter will be full again. With emission interval T and burst b, a
// request of cost c at now is admitted iff max(TAT, now) + c×T - now <= b×T, and then
// TAT = max(TAT, now) + c×T. Seen as a token bucket, the bucket holds (b×T - (TAT - now)) / T
// tokens. SPEC.md has the formulas and the test vectors.
//
// State (little-endian): version u8, strategy u8, limit count u8, 0 u8, fingerprint u32, then per
// limit TAT i64 (µs), then, with a block, the block's end i64 (ms). Redis stores these bytes
// without the header.
const meterHeaderSize = 8

// maxMeterSize is the largest state of a meter.
const maxMeterSize = meterHeaderSize + 8*MaxLimits + blockSize

func newMeterPolicy(strategy Strategy, limits []Limit) (*Policy, error) {
	p := &Policy{strategy: strategy, hardFactor: 1, size: meterHeaderSize + 8*len(limits)}
	h := fnv.New32a()
	h.Write([]byte{formatVersion, byte(strategy), byte(len(limits))})
	for i, l := range limits {
		if err := l.validateMeter(); err != nil {
			return nil, fmt.Errorf("limit %d: %w", i, err)
		}
		c := compiled{Limit: l, hard: l.Quota, offset: meterHeaderSize + 8*i, intervalUs: l.IntervalUs()}
		c.toleranceUs = c.Quota * c.intervalUs
		p.limits = append(p.limits, c)
		p.windowMs = max(p.windowMs, c.WindowMs, (c.toleranceUs+999)/1000)
		var b [8]byte
		for _, v := range []int64{c.Quota, c.intervalUs, c.WindowMs} {
			le.PutUint64(b[:], uint64(v))
			h.Write(b[:])
		}
	}
	p.fingerprint = h.Sum32()
	return p, nil
}

// IntervalUs returns the emission interval T of limit i of a meter, in microseconds (0 for a
// sliding window).
func (p *Policy) IntervalUs(i int) int64 { return p.limits[i].intervalUs }

// loadMeter returns a meter state for p in dst: a copy of old when it is one of p's, else a
// fresh (full) meter.
func (p *Policy) loadMeter(dst, old []byte) (b []byte, reset bool) {
	if cap(dst) >= p.size {
		dst = dst[:p.size]
	} else {
		dst = make([]byte, p.size)
	}
	if p.validMeter(old) {
		copy(dst, old)
		return dst, false
	}
	clear(dst)
	dst[0], dst[1], dst[2] = formatVersion, byte(p.strategy), byte(len(p.limits))
	le.PutUint32(dst[4:], p.fingerprint)
	return dst, len(old) != 0
}

func (p *Policy) validMeter(b []byte) bool {
	return len(b) == p.size && b[0] == formatVersion && b[1] == byte(p.strategy) && b[2] == byte(len(p.limits)) &&
		le.Uint32(b[4:]) == p.fingerprint
}

func tatOf(b []byte, c *compiled) int64     { return int64(le.Uint64(b[c.offset:])) }
func setTat(b []byte, c *compiled, t int64) { le.PutUint64(b[c.offset:], uint64(t)) }

// tatAt returns max(TAT, now) of limit c. A TAT more than two refill times ahead of now (a clock
// stepped back that far, or garbage) starts the limit afresh rather than locking it until the
// clock catches up: bad tells.
func tatAt(b []byte, c *compiled, now int64) (t int64, bad bool) {
	t = tatOf(b, c)
	if t-now > 2*c.toleranceUs {
		return now, true
	}
	return max(t, now), false
}

// ceilMs converts a positive duration in microseconds to whole milliseconds, rounding up.
func ceilMs(us int64) int64 { return max(us+999, 0) / 1000 }

func (p *Policy) decideMeter(dst, old []byte, nowMs, cost int64) ([]byte, Result) {
	b, reset := p.loadMeter(dst, old)
	var res Result
	p.admitMeter(b, nowMs, cost, &res) // checkMeter, one call less on the hot path
	if p.blockMs > 0 {
		p.honourBlock(b, nowMs, &res)
	}
	if res.Allowed {
		now := nowMs * 1000
		for i := range p.limits {
			c := &p.limits[i]
			t, _ := tatAt(b, c, now)
			setTat(b, c, t+cost*c.intervalUs)
		}
		res.Changed = true
	}
	p.blockOnRejection(b, nowMs, &res)
	res.Reset = res.Reset || reset
	p.reportMeter(b, nowMs, &res)
	return b, res
}

// admitMeter tells in res whether cost fits every limit of the meter state b at nowMs, changing
// nothing; res.Reset tells that a limit's TAT was not trusted (see tatAt).
func (p *Policy) admitMeter(b []byte, nowMs, cost int64, res *Result) {
	now := nowMs * 1000
	*res = Result{Allowed: true, Decider: -1}
	for i := range p.limits {
		c := &p.limits[i]
		t, bad := tatAt(b, c, now)
		res.Reset = res.Reset || bad
		if cost > c.Quota {
			res.exhaust(i, 0, false)
		} else if over := t + cost*c.intervalUs - now - c.toleranceUs; over > 0 {
			res.exhaust(i, ceilMs(over), true)
		}
	}
}

// checkMeter is admitMeter on a key that may be blocked.
func (p *Policy) checkMeter(b []byte, nowMs, cost int64, res *Result) {
	p.admitMeter(b, nowMs, cost, res)
	p.honourBlock(b, nowMs, res)
}

// honourBlock turns res into the answer of a blocked key when the key is blocked; the limits'
// verdict is dropped (but not what they said of the state: Reset).
func (p *Policy) honourBlock(b []byte, nowMs int64, res *Result) {
	if p.blockedFor(b, nowMs) > 0 {
		res.Allowed, res.Decider, res.Reason, res.RetryAfterMs = false, -1, ReasonBlocked, 0
	}
}

// reportMeter fills Limit, WindowMs, Remaining and ResetAfterMs from the tightest limit: the one
// with the fewest whole tokens left; and applies the key's block.
func (p *Policy) reportMeter(b []byte, nowMs int64, res *Result) {
	now := nowMs * 1000
	for i := range p.limits {
		c := &p.limits[i]
		t, _ := tatAt(b, c, now)
		res.tighten(i, c, max(c.toleranceUs-(t-now), 0)/c.intervalUs, ceilMs(t-now))
	}
	p.reportBlock(b, nowMs, res)
}

// leaseMeter applies a lease to a meter state (see Policy.Lease). Units are charged when they
// are reserved; unused units given back return at most what would not have refilled since the
// reservation was made, so that a release never leaves the meter fuller than if the units had
// never been reserved.
func (p *Policy) leaseMeter(b []byte, nowMs int64, l Lease) (Grant, bool) {
	now := nowMs * 1000
	freed := max(l.Release-l.Used, 0)
	g := Grant{AtMs: nowMs}
	room := l.Want
	for i := range p.limits {
		c := &p.limits[i]
		t, _ := tatAt(b, c, now)
		if l.Release > 0 {
			reserved := min(l.Release, c.Quota) * c.intervalUs
			t = max(t-min(min(freed, c.Quota)*c.intervalUs, max(reserved-(now-l.ReleaseAtMs*1000), 0)), now)
		}
		setTat(b, c, t)
		avail := max(c.toleranceUs-(t-now), 0) / c.intervalUs
		room = min(room, avail)
		if avail < 1 {
			g.RetryAfterMs = max(g.RetryAfterMs, ceilMs(t-now+c.intervalUs-c.toleranceUs))
		}
	}
	g.Units = max(min(l.Want, max(room, freed)), 0)
	rest, started := p.leaseBlock(b, nowMs, l)
	if rest > 0 {
		g.Units, g.RetryAfterMs = 0, max(g.RetryAfterMs, rest)
	}
	for i := range p.limits {
		// Never beyond what a state may hold and be trusted (tatAt): freed units granted back
		// above a recorded debt would otherwise restart the limit.
		c := &p.limits[i]
		setTat(b, c, min(tatOf(b, c)+g.Units*c.intervalUs, now+2*c.toleranceUs))
	}
	var res Result
	p.reportMeter(b, nowMs, &res)
	g.Limit, g.WindowMs, g.Remaining, g.ResetAfterMs = res.Limit, res.WindowMs, res.Remaining, res.ResetAfterMs
	return g, l.Release > 0 || g.Units > 0 || started
}
