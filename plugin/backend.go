package plugin

import (
	"fmt"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/config"
)

// backend keeps one policy's state and decides requests on it. Each policy gets one, chosen once
// when the configuration loads (newBackend); the limiter never learns which.
//
//   - localBackend: the proxy's shared data (backend_local.go);
//   - redisBackend: one script call through the Redis helper per decision (backend_redis.go);
//   - hybridBackend: local decisions on reservations Redis makes per proxy (backend_hybrid.go).
type backend interface {
	// decide decides c. It returns the outcome at once, or pending: the backend then calls
	// c.finish exactly once, later, from a callback in which the request's context is effective
	// again (and must have made c.key its own, see call).
	decide(c *call) (out outcome, pending bool)
}

// call is one policy's decision of one request.
type call struct {
	ev *evaluation
	ps *policyState
	// key is the request's key for the policy: the limiter's buffer, valid until decide returns.
	// A backend that goes pending replaces it with a copy of its own.
	key  []byte
	now  int64
	cost int64
	draw float64
}

// finish hands a pending decision's outcome back to the request's evaluation.
func (c *call) finish(out outcome) { c.ev.l.resumeWith(c.ev, out) }

// outcome is a backend's decision, or why there is none.
type outcome struct {
	res algorithm.Result
	// err says the state could not be read or written: the policy's failure mode applies.
	err error
	// counted says the request was counted on the policy's local store before the backend failed
	// (redisBackend), with the result local; the failure mode decides what becomes of it.
	counted bool
	local   algorithm.Result
}

// newBackend builds the backend of policy p.
func newBackend(l *limiter, cfg *config.Config, ps *policyState) (backend, error) {
	switch ps.cfg.Backend {
	case config.BackendLocal:
		return ps.local, nil
	case config.BackendRedis:
		return &redisBackend{helper: l.helper, policy: ps.cfg, local: ps.local, now: l.opts.NowMs}, nil
	case config.BackendHybrid:
		if l.sync == nil {
			var err error
			if l.sync, err = newSyncer(cfg, l.helper, uint64(l.opts.Rand()*(1<<53))+1, l.opts.NowMs); err != nil {
				return nil, err
			}
		}
		return newHybridBackend(cfg, ps, l.sync, &redisBackend{helper: l.helper, policy: ps.cfg, local: ps.local, now: l.opts.NowMs})
	}
	return nil, fmt.Errorf("unknown backend %q", ps.cfg.Backend)
}

var (
	_ backend = (*localBackend)(nil)
	_ backend = (*redisBackend)(nil)
	_ backend = (*hybridBackend)(nil)
)
