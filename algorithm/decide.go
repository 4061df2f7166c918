package algorithm

// Reason says why a decision went the way it did, for logs and metrics.
type Reason uint8

const (
	// ReasonAllowed: the request fits every limit.
	ReasonAllowed Reason = iota
	// ReasonQuotaExhausted: the request's cost does not fit what is left of a window (absolute).
	ReasonQuotaExhausted
	// ReasonCostExceedsQuota: the request's cost is larger than a limit's whole quota; it can
	// never pass, so there is no Retry-After.
	ReasonCostExceedsQuota
	// ReasonHardLimit: admitting the request would exceed the hard quota (suppressed).
	ReasonHardLimit
	// ReasonSuppressed: the random draw shed the request (suppressed).
	ReasonSuppressed
	// ReasonBlocked: the key is blocked (PolicyOptions.BlockMs) since an earlier rejection; the
	// limits were not consulted.
	ReasonBlocked
)

// String returns the reason's name as used in logs and metrics.
func (r Reason) String() string {
	switch r {
	case ReasonAllowed:
		return "allowed"
	case ReasonQuotaExhausted:
		return "quota_exhausted"
	case ReasonCostExceedsQuota:
		return "cost_exceeds_quota"
	case ReasonHardLimit:
		return "hard_limit"
	case ReasonSuppressed:
		return "suppressed"
	case ReasonBlocked:
		return "blocked"
	}
	return "unknown"
}

// Result is the outcome of one decision.
type Result struct {
	// Allowed tells whether the request is admitted (and counted in every limit).
	Allowed bool
	// Limit is Q of the tightest limit: the one with the least remaining after the decision.
	// For a meter (GCRA, TokenBucket) it is the burst.
	Limit int64
	// WindowMs is the window of the tightest limit. For a meter it is the limit's window: the
	// period of "N per period" or the window of rate and window (GCRA), or the time an empty
	// bucket takes to refill, rounded up to whole seconds (TokenBucket).
	WindowMs int64
	// Remaining is what is left of the tightest limit's quota after the decision (>= 0); for
	// the suppressed strategy, what is left below the soft quota; for a meter, the whole tokens
	// left: floor((burst × T - (TAT - now)) / T). 0 while the key is blocked.
	Remaining int64
	// RetryAfterMs is, for a rejection, the time until the request would fit if nothing else
	// arrived (the largest over the limits that rejected): under the quota (absolute) or under
	// the hard quota (suppressed). For a request shed by the draw, which may pass at any moment,
	// it is the time until the first accepted unit leaves the window. For a meter, the time until
	// the cost's tokens are back. 0 when allowed, and 0 when the cost can never fit
	// (ReasonCostExceedsQuota). While the key is blocked, at least the rest of the block (a
	// rejection that starts a block: at least the block). Record's answer differs: the time
	// until one more unit fits, whether or not the recorded units had room.
	RetryAfterMs int64
	// ResetAfterMs is the time until the oldest counted bucket of the tightest limit leaves its
	// window (0 when nothing is counted); for a meter, the time until it is full again. While
	// the key is blocked, at least the rest of the block.
	ResetAfterMs int64
	// SuppressionFactor is the share of attempts the suppressed strategy sheds now (0..1):
	// max(0, 1 - rate/perceived rate), 1 above the hard quota, 0 below the soft quota.
	SuppressionFactor float64
	// Suppressed tells that the random draw denied the request.
	Suppressed bool
	// Decider is the index of the limit that decided a rejection, -1 when allowed or blocked.
	Decider int
	// Reason says why.
	Reason Reason
	// Changed tells whether the state must be written back; an absolute rejection counts nothing
	// (unless it starts a block).
	Changed bool
	// Reset tells that the previous state was unusable (corrupt, other limits) and was replaced.
	Reset bool
}

// Decide decides a request of cost units (cost < 1 counts as 1) at nowMs, given the key's
// previous state (nil or anything unusable starts afresh) and a random draw in [0, 1) used by the
// suppressed strategy. It returns the next state, written into dst's storage when dst has
// StateSize() capacity (no allocation), and the result. old and dst may be the same slice.
// The decision is pure: on a compare-and-swap conflict, call it again with the fresh state and
// the same draw. A blocked key is rejected (ReasonBlocked) and nothing is counted; a rejection
// for lack of room (quota exhausted, hard limit) starts the policy's block.
func (p *Policy) Decide(dst, old []byte, nowMs, cost int64, draw float64) ([]byte, Result) {
	if cost < 1 {
		cost = 1
	}
	if p.strategy.Meter() {
		return p.decideMeter(dst, old, nowMs, cost)
	}
	st, base, now, reset := p.prepare(dst, old, nowMs)
	var res Result
	switch {
	case p.blockedFor(st.b, now) > 0:
		res = Result{Decider: -1, Reason: ReasonBlocked}
	case p.strategy == Suppressed:
		res = p.decideSuppressed(st, base, now, cost, draw)
	default:
		if res = p.admit(st, base, now, cost); res.Allowed {
			for i := range p.limits {
				add(st.ring(i), base, now, cost, false)
			}
			res.Changed = true
		}
	}
	p.blockOnRejection(st.b, now, &res)
	res.Reset = reset
	p.report(st, base, now, &res)
	return st.b, res
}

// prepare loads a sliding-window state and brings it to now: the clock never goes back, buckets
// that left their window are dropped, and base moves up when it must.
func (p *Policy) prepare(dst, old []byte, nowMs int64) (st state, base, now int64, reset bool) {
	st, reset = p.load(dst, old, nowMs)
	now = max(nowMs, st.last()) // a clock going backwards is treated as no time passing
	st.setLast(now)
	base = st.base()
	for i := range p.limits {
		expire(st.ring(i), base, now)
	}
	if now-base > rebaseAfterMs {
		// Before anything is added: a bucket offset must fit in 32 bits however long the key
		// was idle.
		p.rebase(st, now)
		base = st.base()
	}
	return st, base, now, reset
}

// expire drops the buckets whose latest request is a whole window or more before now. Counting a
// bucket until its latest request (not its start) leaves the window is what guarantees that no
// window, wherever it starts, holds more than the quota.
func expire(r ring, base, now int64) {
	skip, a, d := live(r, base, now)
	if skip > 0 {
		r.setFirst((r.first() + skip) % r.c.buckets)
		r.setN(r.n() - skip)
	}
	r.setSumA(a)
	r.setSumD(d)
}

// live reads what expire would leave of r without changing it: the number of buckets that left
// the window (the oldest ones), and the admitted and denied units of the others.
func live(r ring, base, now int64) (skip int, a, d int64) {
	n := r.n()
	a, d = r.sumA(), r.sumD()
	for skip < n && now-(base+r.end(skip)) >= r.c.WindowMs {
		a -= r.a(skip)
		d -= r.d(skip)
		skip++
	}
	if skip == n {
		return skip, 0, 0
	}
	return skip, clampU32(a), clampU32(d)
}

// add counts cost (and denied when the request was denied) at now: into the newest bucket if it
// started less than GroupMs ago, else into a new one. A full ring (only reachable from a state
// written with a clock far ahead) adds to the newest bucket, which only makes the limit stricter.
func add(r ring, base, now, cost int64, denied bool) {
	n := r.n()
	if n == 0 || (now-(base+r.start(n-1)) >= r.c.GroupMs && n < r.c.buckets) {
		rec := r.at(n)
		le.PutUint32(rec, uint32(now-base))
		clear(rec[4:r.rec])
		n++
		r.setN(n)
	}
	rec := r.at(n - 1)
	le.PutUint32(rec[4:], uint32(now-base))
	if denied {
		// Denied units only feed the perceived rate: saturating them is harmless.
		le.PutUint32(rec[12:], uint32(clampU32(int64(le.Uint32(rec[12:]))+cost)))
		r.setSumD(r.sumD() + cost)
		return
	}
	// Accepted units never exceed the hard quota (<= MaxQuota), so they never saturate.
	le.PutUint32(rec[8:], uint32(clampU32(int64(le.Uint32(rec[8:]))+cost)))
	r.setSumA(r.sumA() + cost)
}

// fitsAfter returns the time from now until used - (what expires) + cost <= quota, walking the
// buckets oldest first from bucket skip (the buckets before it have expired) and counting each
// bucket's admitted (accepted) units. ok is false when the cost can never fit; r is not read
// then.
func fitsAfter(r ring, skip int, base, now, used, cost, quota int64) (ms int64, ok bool) {
	if cost > quota {
		return 0, false
	}
	recs := r.b[limitHeaderSize:]
	i := r.first() + skip
	if i >= r.c.buckets {
		i -= r.c.buckets
	}
	for k, n := skip, r.n(); k < n && used+cost > quota; k++ {
		rec := recs[i*r.rec : (i+1)*r.rec]
		used -= int64(le.Uint32(rec[8:]))
		ms = base + int64(le.Uint32(rec[4:])) + r.c.WindowMs - now
		if i++; i == r.c.buckets {
			i = 0
		}
	}
	return max(ms, 0), true
}

// exhaust records that limit i rejects the request: its cost can never fit (ok false), or fits
// after retry ms. A cost that never fits decides over every other reason; else the longest wait.
func (res *Result) exhaust(i int, retry int64, ok bool) {
	switch {
	case !ok:
		if res.Reason != ReasonCostExceedsQuota {
			res.Decider, res.Reason, res.RetryAfterMs = i, ReasonCostExceedsQuota, 0
		}
	case res.Reason != ReasonCostExceedsQuota && (res.Allowed || retry > res.RetryAfterMs):
		res.Decider, res.Reason, res.RetryAfterMs = i, ReasonQuotaExhausted, retry
	}
	res.Allowed = false
}

// tighten reports limit i when it has less remaining than the limits before it (the first of
// equals).
func (res *Result) tighten(i int, c *compiled, remaining, resetAfterMs int64) {
	if i == 0 || remaining < res.Remaining {
		res.Limit, res.WindowMs, res.Remaining, res.ResetAfterMs = c.Quota, c.WindowMs, remaining, resetAfterMs
	}
}

// admit applies the absolute rule without counting anything: the cost fits iff it fits what is
// left of every limit's quota (accepted units, for suppressed: its soft quota).
func (p *Policy) admit(st state, base, now, cost int64) Result {
	res := Result{Allowed: true, Decider: -1}
	for i := range p.limits {
		r := st.ring(i)
		if used := r.sumA(); used+cost > r.c.Quota {
			retry, ok := fitsAfter(r, 0, base, now, used, cost, r.c.Quota)
			res.exhaust(i, retry, ok)
		}
	}
	return res
}

func (p *Policy) decideSuppressed(st state, base, now, cost int64, draw float64) Result {
	res := Result{Allowed: true, Decider: -1}
	hard := false
	for i := range p.limits {
		r := st.ring(i)
		acc := r.sumA()
		switch {
		case acc+cost <= r.c.Quota:
		case acc+cost > r.c.hard:
			retry, ok := fitsAfter(r, 0, base, now, acc, cost, r.c.hard)
			reason := ReasonHardLimit
			if !ok {
				reason = ReasonCostExceedsQuota
			}
			if !hard || (res.Reason != ReasonCostExceedsQuota && (reason == ReasonCostExceedsQuota || retry > res.RetryAfterMs)) {
				res.Decider, res.Reason, res.RetryAfterMs = i, reason, retry
			}
			hard = true
			res.SuppressionFactor = 1
		default:
			if sf := suppressionFactor(r, base, now); sf > res.SuppressionFactor && !hard {
				res.SuppressionFactor = sf
				res.Decider = i
			}
		}
	}
	switch {
	case hard:
		res.Allowed = false
		if res.Reason == ReasonCostExceedsQuota {
			res.RetryAfterMs = 0
		}
	case res.SuppressionFactor > 0 && draw < res.SuppressionFactor:
		// A shed request may pass at any moment; it is told the time until the first accepted
		// unit leaves the window, the earliest moment the odds improve.
		r := st.ring(res.Decider)
		acc := r.sumA()
		retry, _ := fitsAfter(r, 0, base, now, acc, 1, acc)
		res.Allowed, res.Suppressed, res.Reason, res.RetryAfterMs = false, true, ReasonSuppressed, retry
	default:
		res.Decider = -1
	}
	for i := range p.limits {
		add(st.ring(i), base, now, cost, !res.Allowed)
	}
	res.Changed = true
	return res
}

// suppressionFactor is max(0, 1 - rate/perceived) with perceived = max(attempts per second over
// the window, attempts in the last second).
func suppressionFactor(r ring, base, now int64) float64 {
	perceived := float64(r.sumA()+r.sumD()) * 1000 / float64(r.c.WindowMs)
	var lastSecond int64
	for k := r.n() - 1; k >= 0 && now-(base+r.end(k)) < 1000; k-- {
		lastSecond += r.a(k) + r.d(k)
	}
	perceived = max(perceived, float64(lastSecond))
	if perceived <= r.c.Rate {
		return 0
	}
	return 1 - r.c.Rate/perceived
}

// report fills Limit, WindowMs, Remaining and ResetAfterMs from the tightest limit, and applies
// the key's block.
func (p *Policy) report(st state, base, now int64, res *Result) {
	for i := range p.limits {
		r := st.ring(i)
		var resetAfter int64
		if r.n() > 0 {
			resetAfter = max(base+r.end(0)+r.c.WindowMs-now, 0)
		}
		res.tighten(i, r.c, max(r.c.Quota-r.sumA(), 0), resetAfter)
	}
	p.reportBlock(st.b, now, res)
}

// rebase moves base up to now minus the longest window, keeping every live bucket's start.
func (p *Policy) rebase(st state, now int64) {
	base := st.base()
	newBase := now - p.windowMs
	shift := newBase - base
	if shift <= 0 {
		return
	}
	for i := range p.limits {
		r := st.ring(i)
		for k := 0; k < r.n(); k++ {
			rec := r.at(k)
			le.PutUint32(rec, uint32(max(int64(le.Uint32(rec))-shift, 0)))
			le.PutUint32(rec[4:], uint32(max(int64(le.Uint32(rec[4:]))-shift, 0)))
		}
	}
	le.PutUint64(st.b[8:], uint64(newBase))
}
