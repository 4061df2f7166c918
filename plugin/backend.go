package plugin

import (
	"fmt"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/config"
)

// backend keeps one tier's state (a policy without tiers has one tier) and decides requests on
// it. Each tier gets one, chosen once when the configuration loads (newTierState); the limiter
// never learns which.
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
	ts *tierState // the request's tier of ps
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
	// counted says the request was counted on the tier's local store (the local backend's
	// decision, or the redis backend's own count, with its result in local): when the backend
	// failed, the failure mode decides what becomes of it.
	counted bool
	local   algorithm.Result
	// redisAt is Redis's clock of a decision Redis made (0 for the others), which a refund names;
	// lease says a hybrid backend decided on the key's reservation.
	redisAt int64
	lease   bool
}

// tierState is one tier of a policy at run time (a policy without tiers has one): its limits, the
// backend that keeps their state, and its state in shared data.
type tierState struct {
	// ns names the tier's state (shared-data prefix, Redis keys): the policy's name for its default
	// tier, "<policy>:t:<value>" for a listed one.
	ns      string
	policy  *algorithm.Policy
	backend backend
	// remote is the tier's Redis (redis and hybrid backends), hybrid its hybrid backend.
	remote *redisBackend
	hybrid *hybridBackend
	// room is what the proxy knows of its keys' room, for a redis policy that counts on the
	// response (response.go).
	room *roomStore
	// local is the tier's state in shared data: the backend of a local policy, and the fallback
	// (failure mode local) and the proxy's own count of the others.
	local *localBackend
}

// newTierState builds the state of one limited tier of ps, and its backend.
func newTierState(l *limiter, cfg *config.Config, ps *policyState, tier *config.Tier) (*tierState, error) {
	ts := &tierState{ns: ps.cfg.Name, policy: tier.Compiled}
	if tier.Name != "" {
		ts.ns += ":t:" + tier.Name
	}
	var err error
	if ts.local, err = newLocalBackend(cfg, ts.ns, tier.Compiled, ps.m.evictions); err != nil {
		return nil, err
	}
	switch ps.cfg.Backend {
	case config.BackendLocal:
		ts.backend = ts.local
	case config.BackendRedis:
		ts.remote = &redisBackend{helper: l.helper, name: ts.ns, policy: ts.policy, local: ts.local, now: l.opts.NowMs}
		ts.backend = ts.remote
		if ps.cfg.Counting.OnResponse {
			if ts.room, err = newRoomStore(cfg, ts.ns, ts.policy); err != nil {
				return nil, err
			}
		}
	case config.BackendHybrid:
		if l.sync == nil {
			if l.sync, err = newSyncer(cfg, l.helper, uint64(l.opts.Rand()*(1<<53))+1, l.opts.NowMs); err != nil {
				return nil, err
			}
		}
		ts.remote = &redisBackend{helper: l.helper, name: ts.ns, policy: ts.policy, local: ts.local, now: l.opts.NowMs}
		if ts.hybrid, err = newHybridBackend(cfg, ps, ts, l.sync, ts.remote); err != nil {
			return nil, err
		}
		ts.backend = ts.hybrid
	default:
		return nil, fmt.Errorf("unknown backend %q", ps.cfg.Backend)
	}
	return ts, nil
}

// tierFor returns the request's tier, nil when it is unlimited.
func (ps *policyState) tierFor(r config.Request) *tierState {
	if len(ps.tiers) == 1 {
		return ps.tiers[0]
	}
	t := ps.cfg.TierFor(r)
	for i, ct := range ps.cfg.Tiers {
		if ct == t {
			return ps.tiers[i]
		}
	}
	return ps.tiers[0]
}

var (
	_ backend = (*localBackend)(nil)
	_ backend = (*redisBackend)(nil)
	_ backend = (*hybridBackend)(nil)
)
