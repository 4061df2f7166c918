package plugin

import "github.com/floodgate-proxy/floodgate/redislimit"

// All or nothing: a request that one policy rejects consumes nothing in the others that applied
// to it. Every admission of an evaluation is remembered (admit) and, when a later policy rejects
// the request, given back (undo):
//   - counted on the proxy's shared data (backend local; the redis backend's own count; a
//     decision its failure mode took locally): algorithm.Policy.Refund, at once;
//   - decided in Redis: the script's refund mode, sent from the root context without waiting,
//     naming the decision's time on Redis's clock; until it arrives, Redis counts the unit;
//   - spent from a hybrid reservation: the reservation gets it back.
// Policies decided before the rejecting one had counted the request for a moment: another request
// in that moment could have been refused for it. Nothing is given back for a policy that counts on
// the response (it counted nothing yet), nor for a shadow policy's rejection.

// admission is one policy's admission of the request being evaluated; its key is
// evaluation.keys[from:to].
type admission struct {
	ts        *tierState
	from, to  int
	at, cost  int64
	redisAt   int64 // Redis's clock of the decision, when Redis made it
	lease     bool  // spent from a hybrid reservation
	countedAt bool  // counted on the local store at at
}

// admit remembers the admission of the call in progress.
func (ev *evaluation) admit(c *call, out outcome) {
	from := len(ev.keys)
	ev.keys = append(ev.keys, c.key...)
	ev.admitted = append(ev.admitted, admission{ts: c.ts, from: from, to: len(ev.keys), at: c.now, cost: c.cost,
		redisAt: out.redisAt, lease: out.lease, countedAt: out.counted})
}

// undo gives back every admission of ev (the request was rejected).
func (l *limiter) undo(ev *evaluation) {
	if len(ev.admitted) == 0 {
		return
	}
	now := l.opts.NowMs()
	for _, a := range ev.admitted {
		key := ev.keys[a.from:a.to]
		switch {
		case a.lease:
			a.ts.hybrid.refundLease(key, now, a.cost)
		case a.countedAt:
			a.ts.local.refund(key, now, a.at, a.cost)
		}
		if a.redisAt > 0 {
			a.ts.remote.background(ev.stream, key, redislimit.Call{Mode: redislimit.ModeRefund, Cost: a.cost, NowMs: -1, AtMs: a.redisAt}, nil)
		}
	}
	ev.admitted = ev.admitted[:0]
}
