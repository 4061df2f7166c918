package plugin

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/config"
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
	policy *config.Policy
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
		return outcome{res: guard}, false // this proxy alone used the quota up: Redis would refuse too
	}
	counted := gerr == nil
	if b.helper.breaker.open(c.now) {
		return outcome{err: errBreakerOpen, counted: counted, local: guard}, false
	}
	c.key = append([]byte(nil), c.key...) // the limiter's buffer is reused by other requests meanwhile
	h1, h2 := keyHashes(c.key)
	rkey := b.helper.redisKey(b.policy.Name, h1, h2)
	script := redislimit.ScriptFor(b.policy.Compiled)
	// A call that reaches Redis after this request gave up on it counts nothing there.
	deadline := b.helper.clock.deadline(c.now + int64(b.helper.cfg.TimeoutMs))
	args := redislimit.Args(b.policy.Compiled, redislimit.Call{Cost: c.cost, Draw: c.draw, NowMs: -1, DeadlineMs: deadline})
	stream := c.ev.stream
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
			if err == nil && !res.Allowed && counted {
				b.local.refund(c.key, now, c.now, c.cost)
			}
			if host.SetEffectiveContext(stream) != nil {
				return // the request is gone
			}
			c.finish(outcome{res: res, err: err, counted: counted, local: guard})
		})
	}
	if err := send(command("EVALSHA", script.SHA, rkey, args), false); err != nil {
		b.helper.breaker.record(false, c.now)
		return outcome{err: err, counted: counted, local: guard}, false
	}
	return outcome{}, true
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
