package plugin

import (
	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/config"
)

// unavailable is the answer of failure mode closed.
var unavailable = &localAnswer{Status: 503, Headers: [][2]string{{"content-type", "text/plain"}},
	Body: []byte("rate limit state unavailable\n")}

// failed applies the policy's failure mode to a decision of c that failed (out.err). It returns
// the outcome to apply instead (still failed, for failure mode open: the request goes on as if
// the policy did not apply), or answered for failure mode closed. A request the backend already
// counted on the local store (out.counted) keeps that count under failure modes local and open,
// and is given it back under closed.
func (ps *policyState) failed(c *call, out outcome) (outcome, bool) {
	_ = ps.m.errors.Add(1)
	ps.logf(c.now, "floodgate: policy %s: %v", ps.cfg.Name, out.err)
	switch ps.cfg.FailureMode {
	case config.FailLocal:
		res, err := out.local, error(nil)
		switch {
		case !out.counted:
			res, err = c.ts.local.decideNow(c.key, c.now, c.cost, c.draw)
		case res.Allowed && c.draw < res.SuppressionFactor:
			// The count left shedding to Redis (suppressed): shed here now, as the local
			// decision would have, and keep the attempt as denied.
			c.ts.local.refund(c.key, c.ev.l.opts.NowMs(), c.now, c.cost)
			res.Allowed, res.Suppressed, res.Reason, res.RetryAfterMs = false, true, algorithm.ReasonSuppressed, res.ResetAfterMs
		}
		if err == nil {
			_ = ps.m.fallbacks.Add(1)
		}
		return outcome{res: res, err: err, counted: err == nil && res.Allowed}, false
	case config.FailClosed:
		if out.counted {
			c.ts.local.refund(c.key, c.ev.l.opts.NowMs(), c.now, c.cost)
		}
		_ = ps.m.failedClosed.Add(1)
		return outcome{err: out.err}, true
	}
	_ = ps.m.failedOpen.Add(1)
	return outcome{err: out.err}, false
}
