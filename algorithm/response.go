package algorithm

import (
	"errors"
	"fmt"
)

// Counting decided by the response: a request is checked without being counted (Check), and its
// response decides whether it counts (Record) or clears the key (Reset). A request the check
// rejects for lack of room starts the policy's block (Block), as a rejection by Decide does.
// SPEC.md, "Counting on the response", has the rules and the vectors.

// ErrResponseCounting is the error of a strategy that cannot count on the response.
var ErrResponseCounting = errors.New("counting on the response is not possible with this strategy")

// CountsOnResponse tells whether the strategy can count requests on their response (Check,
// Record): every strategy but suppressed, whose shedding needs every attempt recorded as it
// arrives (a check records nothing, and only some responses are counted, so its perceived rate
// would be that of the counted responses). The configuration reports the error.
func (s Strategy) CountsOnResponse() error {
	if s == Suppressed {
		return fmt.Errorf("%w: %s sheds on the rate of every attempt, which a check does not record", ErrResponseCounting, s)
	}
	return nil
}

// Check answers what Decide would for a request of cost at nowMs under the absolute rule, and
// changes nothing (Changed is false): it is rejected only when the cost does not fit what is
// left (ReasonQuotaExhausted, with Retry-After), can never fit (ReasonCostExceedsQuota), or the
// key is blocked (ReasonBlocked). Remaining is what is left before the request. It does not
// allocate. A suppressed policy is checked against its soft quota, without drawing (see
// Strategy.CountsOnResponse).
func (p *Policy) Check(old []byte, nowMs, cost int64) Result {
	if cost < 1 {
		cost = 1
	}
	var res Result
	if p.strategy.Meter() {
		var buf [maxMeterSize]byte
		b, reset := p.loadMeter(buf[:0], old)
		p.checkMeter(b, nowMs, cost, &res)
		res.Reset = res.Reset || reset
		p.reportMeter(b, nowMs, &res)
		return res
	}
	// old is read as it is: what expire would drop is skipped (live).
	res = Result{Allowed: true, Decider: -1, Reset: len(old) != 0}
	st, base, now := state{p: p, b: old}, nowMs, nowMs
	usable := p.usable(old, nowMs)
	if usable {
		res.Reset = false
		base, now = st.base(), max(nowMs, st.last())
	}
	blocked := usable && p.blockedFor(old, now) > 0
	for i := range p.limits {
		c := &p.limits[i]
		var r ring // a fresh state's rings are empty: fitsAfter only reads r when the cost can fit
		skip, used, resetAfter := 0, int64(0), int64(0)
		if usable {
			r = st.ring(i)
			skip, used, _ = live(r, base, now)
			if skip < r.n() {
				resetAfter = max(base+r.end(skip)+c.WindowMs-now, 0)
			}
		}
		if !blocked && used+cost > c.Quota {
			retry, ok := fitsAfter(r, skip, base, now, used, cost, c.Quota)
			res.exhaust(i, retry, ok)
		}
		res.tighten(i, c, max(c.Quota-used, 0), resetAfter)
	}
	if blocked {
		res.Allowed, res.Decider, res.Reason = false, -1, ReasonBlocked
		p.reportBlock(old, now, &res)
	}
	return res
}

// check is admit on a key that may be blocked.
func (p *Policy) check(st state, base, now, cost int64) Result {
	if p.blockedFor(st.b, now) > 0 {
		return Result{Decider: -1, Reason: ReasonBlocked}
	}
	return p.admit(st, base, now, cost)
}

// Block answers what Check answers and, when that is a rejection for lack of room
// (ReasonQuotaExhausted), starts the policy's block, as a rejection by Decide would: for a
// request the caller turns down on a check (its own, or a view of the key it keeps from an
// earlier answer). Nothing is counted; Changed tells whether the state must be written. Without
// a block (BlockMs 0) it is Check.
func (p *Policy) Block(dst, old []byte, nowMs, cost int64) ([]byte, Result) {
	if cost < 1 {
		cost = 1
	}
	if p.strategy.Meter() {
		b, reset := p.loadMeter(dst, old)
		var res Result
		p.checkMeter(b, nowMs, cost, &res)
		p.blockOnRejection(b, nowMs, &res)
		res.Reset = res.Reset || reset
		p.reportMeter(b, nowMs, &res)
		return b, res
	}
	st, base, now, reset := p.prepare(dst, old, nowMs)
	res := p.check(st, base, now, cost)
	p.blockOnRejection(st.b, now, &res)
	res.Reset = reset
	p.report(st, base, now, &res)
	return st.b, res
}

// Record counts cost units at nowMs as admitted whatever the quota (a counted response
// happened), for counting on the response. Allowed tells whether the key still had room for
// them (what Check would have answered: Reason and Decider are its); when it had none, the
// policy's block starts (unless one runs: a block is never extended). RetryAfterMs is the time
// until one more unit fits (0 when one does), at least the rest of the block: how long the key
// has no room. Remaining and ResetAfterMs are after the record. It returns the next state (in
// dst's storage when it has StateSize() capacity); Changed is always true.
//
// Sliding windows keep counts beyond the quota (as far as 2^32 - 1), so a key recorded past its
// quota has no room until enough of them leave the window. A meter's TAT moves by cost × T but
// never beyond now + 2 × burst × T, the furthest a state may be ahead and still be trusted: a
// key recorded past its burst stays empty (for up to a refill time longer), rather than start
// afresh.
func (p *Policy) Record(dst, old []byte, nowMs, cost int64) ([]byte, Result) {
	if cost < 1 {
		cost = 1
	}
	if p.strategy.Meter() {
		return p.recordMeter(dst, old, nowMs, cost)
	}
	st, base, now, reset := p.prepare(dst, old, nowMs)
	res := p.check(st, base, now, cost)
	for i := range p.limits {
		add(st.ring(i), base, now, cost, false)
	}
	res.Changed = true
	p.blockOnRejection(st.b, now, &res)
	res.RetryAfterMs = p.admit(st, base, now, 1).RetryAfterMs
	res.Reset = reset
	p.report(st, base, now, &res)
	return st.b, res
}

func (p *Policy) recordMeter(dst, old []byte, nowMs, cost int64) ([]byte, Result) {
	now := nowMs * 1000
	b, reset := p.loadMeter(dst, old)
	var res, next Result
	p.checkMeter(b, nowMs, cost, &res)
	for i := range p.limits {
		c := &p.limits[i]
		t, _ := tatAt(b, c, now)
		setTat(b, c, min(t+cost*c.intervalUs, now+2*c.toleranceUs))
	}
	res.Changed = true
	p.blockOnRejection(b, nowMs, &res)
	p.admitMeter(b, nowMs, 1, &next)
	res.RetryAfterMs = next.RetryAfterMs
	res.Reset = res.Reset || reset
	p.reportMeter(b, nowMs, &res)
	return b, res
}

// Reset returns a fresh state at nowMs (in dst's storage when it has StateSize() capacity): the
// key as if it had never been seen, its block lifted; for the statuses that clear a key.
func (p *Policy) Reset(dst []byte, nowMs int64) []byte {
	if p.strategy.Meter() {
		b, _ := p.loadMeter(dst, nil)
		return b
	}
	st, _ := p.load(dst, nil, nowMs)
	return st.b
}
