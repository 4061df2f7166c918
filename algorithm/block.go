package algorithm

// Blocks (PolicyOptions.BlockMs). A key that a decision rejects for lack of room is rejected,
// whatever its usage, until the block ends; the block's end (ms, on the decisions' clock) is
// the last 8 bytes of the state of a policy with a block (FORMAT.md). SPEC.md has the rules.

// blockedFor returns the rest of the key's block at nowMs, 0 when it is not blocked (or the
// policy has no block, or b is no state). An end more than two blocks ahead (a clock stepped
// back that far, or garbage) is not trusted: it blocks nothing.
func (p *Policy) blockedFor(b []byte, nowMs int64) int64 {
	if p.blockMs == 0 || len(b) != p.size {
		return 0
	}
	rest := int64(le.Uint64(b[p.size-blockSize:])) - nowMs
	if rest <= 0 || rest > 2*p.blockMs {
		return 0
	}
	return rest
}

// startBlock blocks the key from nowMs for the policy's block.
func (p *Policy) startBlock(b []byte, nowMs int64) {
	le.PutUint64(b[p.size-blockSize:], uint64(nowMs+p.blockMs))
}

// blockOnRejection starts the policy's block when res rejects for lack of room, unless the key
// is blocked already (a block is never extended). A cost that can never fit and a suppressed
// shed start none: neither says the key used its quota up.
func (p *Policy) blockOnRejection(b []byte, nowMs int64, res *Result) {
	if p.blockMs > 0 && !res.Allowed {
		p.blockOn(b, nowMs, res)
	}
}

func (p *Policy) blockOn(b []byte, nowMs int64, res *Result) {
	if (res.Reason == ReasonQuotaExhausted || res.Reason == ReasonHardLimit) && p.blockedFor(b, nowMs) == 0 {
		p.startBlock(b, nowMs)
		res.Changed = true
	}
}

// reportBlock makes a blocked key's answer say so: nothing remaining, and no retry or reset
// before the block ends.
func (p *Policy) reportBlock(b []byte, nowMs int64, res *Result) {
	if rest := p.blockedFor(b, nowMs); rest > 0 {
		res.Remaining = 0
		res.RetryAfterMs = max(res.RetryAfterMs, rest)
		res.ResetAfterMs = max(res.ResetAfterMs, rest)
	}
}

// leaseBlock applies the block to a lease: a lease that reports rejections starts it (the hybrid
// proxy rejected requests for lack of room), and a blocked key is granted nothing until the block
// ends. It returns the rest of the block and whether it started.
func (p *Policy) leaseBlock(b []byte, nowMs int64, l Lease) (rest int64, started bool) {
	if p.blockMs > 0 && l.Rejected > 0 && p.blockedFor(b, nowMs) == 0 {
		p.startBlock(b, nowMs)
		started = true
	}
	return p.blockedFor(b, nowMs), started
}
