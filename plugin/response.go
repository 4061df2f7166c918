package plugin

import (
	"encoding/binary"
	"fmt"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/config"
	"github.com/floodgate-proxy/floodgate/internal/host"
	"github.com/floodgate-proxy/floodgate/redislimit"
	"github.com/floodgate-proxy/floodgate/store"
)

// Counting decided by the response ("count": {"on": "response", "statuses": [...]}) and keys
// cleared by it ("reset": {"statuses": [...]}).
//
// A request of a policy that counts on the response is only checked when it arrives: rejected
// when its key has no room left (or is blocked), else let through uncounted. When the upstream
// answers, a counting status records it (and a record that finds no room starts the policy's
// block), a reset status clears the key.
//
//   - backend local: the check and the record run on the proxy's shared data, exactly.
//   - backend redis: one helper call per counted (or resetting) response, none per request. The
//     record's answer tells how long the key has no room (a block included); the proxy keeps that
//     in a small store of its own (the tier's "room" store) and checks requests against it. A
//     proxy that never saw the key's failures learns it with its first counted response: across
//     N proxies, a key gets at most N-1 more counted responses than its quota (one per proxy, per
//     response in flight), never more.
//   - backend hybrid: refused by the configuration (reservations are spent on arrival).

// responseHook is a policy that waits for the upstream's answer to the request.
type responseHook struct {
	ps   *policyState
	ts   *tierState
	key  []byte
	cost int64
}

// awaitResponse remembers the call in progress for the upstream's answer.
func (ev *evaluation) awaitResponse(c *call) {
	ev.responses = append(ev.responses, responseHook{ps: c.ps, ts: c.ts, key: append([]byte(nil), c.key...), cost: c.cost})
}

// response applies the upstream's status to the policies that waited for it.
func (l *limiter) response(hooks []responseHook, status uint32, stream uint32) {
	now := l.opts.NowMs()
	for _, h := range hooks {
		cnt := h.ps.cfg.Counting
		switch {
		case cnt.OnResponse && cnt.Counts(status):
			_ = h.ps.m.recorded.Add(1)
			h.ts.record(h.ps, stream, h.key, now, h.cost)
		case cnt.Resets(status):
			_ = h.ps.m.resets.Add(1)
			h.ts.reset(h.ps, stream, h.key, now)
		}
	}
}

// check decides a request of a policy that counts on the response, counting nothing. A
// rejection for lack of room starts the policy's block (block_for), as a decision's would.
func (ts *tierState) check(c *call) outcome {
	if ts.remote == nil {
		res, err := ts.local.check(c.key, c.now, c.cost)
		return outcome{res: res, err: err}
	}
	res, startBlock := ts.room.check(c.key, c.now, c.cost, ts.policy)
	if startBlock {
		// Redis said the key had no room; the block starts there, for every proxy.
		key := append([]byte(nil), c.key...) // the call's key is the limiter's buffer
		ts.remote.background(c.ev.stream, key, redislimit.Call{Mode: redislimit.ModeBlock, Cost: c.cost, NowMs: -1},
			func(res algorithm.Result, err error) {
				if err == nil {
					ts.room.learn(key, ts.remote.now(), res, true)
				}
			})
	}
	return outcome{res: res}
}

// record counts a request whose response counts.
func (ts *tierState) record(ps *policyState, stream uint32, key []byte, now, cost int64) {
	if ts.remote == nil {
		if err := ts.local.record(key, now, cost); err != nil {
			ps.logf(now, "floodgate: policy %s: recording a response: %v", ps.cfg.Name, err)
		}
		return
	}
	ts.remote.background(stream, key, redislimit.Call{Mode: redislimit.ModeRecord, Cost: cost, NowMs: -1},
		func(res algorithm.Result, err error) {
			if err == nil {
				ts.room.learn(key, ts.remote.now(), res, !res.Allowed && ts.policy.BlockMs() > 0)
			}
		})
}

// reset clears a key whose response resets it.
func (ts *tierState) reset(ps *policyState, stream uint32, key []byte, now int64) {
	if err := ts.local.reset(key, now); err != nil {
		ps.logf(now, "floodgate: policy %s: resetting a key: %v", ps.cfg.Name, err)
	}
	if ts.remote == nil {
		return
	}
	ts.room.forget(key, now)
	ts.remote.background(stream, key, redislimit.Call{Mode: redislimit.ModeReset, NowMs: -1}, nil)
}

// roomStore is what a proxy knows of the room of keys a redis policy counts on the response:
// per key, until when it has none (blocked or used up) and the last tightest limit Redis
// reported, for the rate-limit headers. One bounded store per tier, like the local state.
type roomStore struct {
	st    *store.Store
	ttlMs int64
}

// A room entry: until i64 (no room before it), limit i64, window ms i64, remaining i64, reset at
// i64 (local ms), blocked i64 (1: until is the end of a block Redis runs).
const roomSize = 48

func newRoomStore(cfg *config.Config, ns string, p *algorithm.Policy) (*roomStore, error) {
	st, err := store.New(sharedData{}, store.Options{Prefix: cfg.SharedData.Prefix + ":" + ns + ":room",
		Slots: cfg.SharedData.Slots, PayloadSize: roomSize})
	if err != nil {
		return nil, fmt.Errorf("room store: %w", err)
	}
	return &roomStore{st: st, ttlMs: p.LongestWindowMs()}, nil
}

// check answers a request from what the proxy knows of the key; startBlock says that the key has
// no room, the policy blocks, and Redis has not said a block runs.
func (r *roomStore) check(key []byte, now, cost int64, p *algorithm.Policy) (res algorithm.Result, startBlock bool) {
	lim := p.Limits()[0]
	res = algorithm.Result{Allowed: true, Decider: -1, Limit: lim.Quota, WindowMs: lim.WindowMs, Remaining: lim.Quota}
	_, _ = r.st.Update(key, now, r.ttlMs, func(cur []byte) ([]byte, bool) {
		if cur == nil {
			return nil, false
		}
		u := func(i int) int64 { return int64(binary.LittleEndian.Uint64(cur[8*i:])) }
		if resetAt := u(4); resetAt > now {
			res.Limit, res.WindowMs, res.Remaining, res.ResetAfterMs = u(1), u(2), u(3), resetAt-now
		}
		if until := u(0); until > now {
			res.Allowed, res.Reason, res.RetryAfterMs, res.Remaining = false, algorithm.ReasonQuotaExhausted, until-now, 0
			startBlock = p.BlockMs() > 0 && u(5) == 0
		}
		return nil, false
	})
	return res, startBlock
}

// learn keeps what a record's (or a block's) answer said of the key, received at now; blocked
// says a block runs in Redis until the answer's RetryAfterMs.
func (r *roomStore) learn(key []byte, now int64, res algorithm.Result, blocked bool) {
	_, _ = r.st.Update(key, now, r.ttlMs, func(cur []byte) ([]byte, bool) {
		b := make([]byte, 0, roomSize)
		until, wait := int64(0), res.RetryAfterMs
		if blocked {
			wait = max(wait, res.ResetAfterMs) // a block's answer tells its rest in ResetAfterMs
		}
		if wait > 0 {
			until = now + wait
		}
		b2i := int64(0)
		if blocked {
			b2i = 1
		}
		for _, v := range []int64{until, res.Limit, res.WindowMs, res.Remaining, now + res.ResetAfterMs, b2i} {
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
		}
		return b, true
	})
}

// forget clears what the proxy knew of the key (it was reset).
func (r *roomStore) forget(key []byte, now int64) {
	_, _ = r.st.Update(key, now, r.ttlMs, func(cur []byte) ([]byte, bool) {
		if cur == nil {
			return nil, false
		}
		return make([]byte, roomSize), true
	})
}

// responseStatus reads the upstream's status in a response callback.
func responseStatus() (uint32, bool) {
	v, err := host.ResponseHeader(":status")
	if err != nil {
		return 0, false
	}
	var s uint32
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
		s = s*10 + uint32(v[i]-'0')
	}
	return s, len(v) == 3
}
