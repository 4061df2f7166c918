package plugin

import "github.com/floodgate-proxy/floodgate/config"

// unavailable is the answer of failure mode closed.
var unavailable = &localAnswer{Status: 503, Headers: [][2]string{{"content-type", "text/plain"}},
	Body: []byte("rate limit state unavailable\n")}

// failed applies the policy's failure mode to a decision of c that failed with err. It returns
// the outcome to apply instead (still failed, for failure mode open: the request goes on as if
// the policy did not apply), or answered for failure mode closed.
func (ps *policyState) failed(c *call, err error) (out outcome, answered bool) {
	_ = ps.m.errors.Add(1)
	ps.logf(c.now, "floodgate: policy %s: %v", ps.cfg.Name, err)
	switch ps.cfg.FailureMode {
	case config.FailLocal:
		res, lerr := ps.local.decideNow(c.key, c.now, c.cost, c.draw)
		if lerr == nil {
			_ = ps.m.fallbacks.Add(1)
		}
		return outcome{res: res, err: lerr}, false
	case config.FailClosed:
		_ = ps.m.failedClosed.Add(1)
		return outcome{err: err}, true
	}
	_ = ps.m.failedOpen.Add(1)
	return outcome{err: err}, false
}
