package plugin

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/internal/host"
	"github.com/floodgate-proxy/floodgate/redislimit"
	"github.com/tidwall/gjson"
)

// redisBackend decides every request in Redis: one EVALSHA of the policy's script through the
// helper (EVAL when Redis does not know the script yet), the request paused meanwhile.
//
// Every request is first counted on this proxy's shared data (local), so that no proxy ever admits
// more than a key's quota in any window, whatever happens to Redis: while Redis answers, the
// local count never binds before Redis does (one proxy's share of a key is never more than all
// proxies'), and it saves the call for a key this proxy alone exhausted; when a decision fails,
// the failure mode decides with that count (local: it stands; closed: it is given back), so that
// the proxies together admit at most the quota each, not the quota each on top of what Redis
// admitted. A rejection by Redis gives the local unit back.
type redisBackend struct {
	helper *helper
	name   string // the tier's state name (tierState.ns)
	policy *algorithm.Policy
	local  *localBackend
	now    func() int64
}

// guardDraw is the draw of the local count: the suppressed strategy never sheds on it (Redis
// sheds; the failure mode sheds on the count's suppression factor when Redis cannot), only its
// hard quota binds.
var guardDraw = math.Nextafter(1, 0)

func (b *redisBackend) decide(c *call) (outcome, bool) {
	guard, gerr := b.local.decideNow(c.key, c.now, c.cost, guardDraw)
	if gerr == nil && !guard.Allowed {
		// This proxy alone used the quota up: Redis would refuse too. When that started the
		// policy's block here, it starts in Redis too, for every proxy.
		if b.policy.BlockMs() > 0 && guard.Reason == algorithm.ReasonQuotaExhausted {
			b.background(c.ev.stream, c.key, redislimit.Call{Mode: redislimit.ModeBlock, Cost: c.cost, NowMs: -1}, nil)
		}
		return outcome{res: guard}, false
	}
	counted := gerr == nil
	if b.helper.breaker.open(c.now) {
		return outcome{err: errBreakerOpen, counted: counted, local: guard}, false
	}
	c.key = append([]byte(nil), c.key...) // the limiter's buffer is reused by other requests meanwhile
	stream := c.ev.stream
	// A call that reaches Redis after this request gave up on it counts nothing there.
	deadline := b.helper.clock.deadline(c.now + int64(b.helper.cfg.TimeoutMs))
	call := redislimit.Call{Cost: c.cost, Draw: c.draw, NowMs: -1, DeadlineMs: deadline}
	err := b.run(c.key, call, func(res algorithm.Result, redisNow int64, err error) {
		if err == nil && !res.Allowed && counted {
			b.local.refund(c.key, b.now(), c.now, c.cost)
		}
		if host.SetEffectiveContext(stream) != nil {
			return // the request is gone
		}
		c.finish(outcome{res: res, err: err, counted: counted, local: guard, redisAt: redisNow})
	})
	if err != nil {
		return outcome{err: err, counted: counted, local: guard}, false
	}
	return outcome{}, true
}

// run sends one call of the policy's script on key through the helper (EVAL when Redis does not
// know the script yet); done runs in the answer's callback, with Redis's clock of the answer. An
// error means no call was made.
func (b *redisBackend) run(key []byte, call redislimit.Call, done func(res algorithm.Result, redisNow int64, err error)) error {
	h1, h2 := keyHashes(key)
	rkey := b.helper.redisKey(b.name, h1, h2)
	script := redislimit.ScriptFor(b.policy)
	args := redislimit.Args(b.policy, call)
	var send func(body []byte, retried bool) error
	send = func(body []byte, retried bool) error {
		return b.helper.post(false, body, b.helper.cfg.TimeoutMs, func(numHeaders, bodySize int) {
			res, redisNow, noscript, err := readAnswer(numHeaders, bodySize)
			if noscript && !retried {
				if send(command("EVAL", script.Source, rkey, args), true) == nil {
					return
				}
			}
			now := b.now()
			if redisNow > 0 {
				b.helper.clock.observe(redisNow, now)
			}
			// Redis answered a call that came too late: the helper works, this request was slow.
			b.helper.breaker.record(err == nil || errors.Is(err, redislimit.ErrDeadlinePassed), now)
			done(res, redisNow, err)
		})
	}
	if err := send(command("EVALSHA", script.SHA, rkey, args), false); err != nil {
		b.helper.breaker.record(false, b.now())
		return err
	}
	return nil
}

// background runs call on key from the root context, for a request that will not wait for it (a
// refund, a record, a reset); done may be nil. Nothing is sent while the breaker is open.
func (b *redisBackend) background(stream uint32, key []byte, call redislimit.Call, done func(res algorithm.Result, err error)) {
	if b.helper.breaker.open(b.now()) {
		return
	}
	key = append([]byte(nil), key...)
	b.helper.fromRoot(stream, func() {
		err := b.run(key, call, func(res algorithm.Result, _ int64, err error) {
			if err != nil {
				b.helper.logf(b.now(), "floodgate: redis %s of a key of %s: %v", modeName(call.Mode), b.name, err)
			}
			if done != nil {
				done(res, err)
			}
		})
		if err != nil {
			b.helper.logf(b.now(), "floodgate: redis %s of a key of %s: %v", modeName(call.Mode), b.name, err)
		}
	})
}

func modeName(m redislimit.Mode) string {
	switch m {
	case redislimit.ModeRecord:
		return "record"
	case redislimit.ModeReset:
		return "reset"
	case redislimit.ModeRefund:
		return "refund"
	}
	return "call"
}

// readAnswer reads the helper's answer to one decision in the running callback, with the time on
// Redis's clock when Redis made it.
func readAnswer(numHeaders, bodySize int) (res algorithm.Result, redisNow int64, noscript bool, err error) {
	status, body, err := helperAnswer(numHeaders, bodySize)
	if err != nil {
		return res, 0, false, err
	}
	answer := gjson.ParseBytes(body)
	if msg := answer.Get("error"); msg.Exists() {
		return res, 0, strings.HasPrefix(msg.String(), "NOSCRIPT"), fmt.Errorf("helper answered %s: %s", status, msg.String())
	}
	if status != "200" {
		return res, 0, false, fmt.Errorf("helper answered %s", status)
	}
	ints, ok := resultInts(answer, make([]int64, 0, 12))
	if !ok {
		return res, 0, false, fmt.Errorf("helper answered %.80q", body)
	}
	res, redisNow, err = redislimit.ResultAt(ints)
	return res, redisNow, false, err
}
