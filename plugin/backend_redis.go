package plugin

import (
	"fmt"
	"strings"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/config"
	"github.com/floodgate-proxy/floodgate/internal/host"
	"github.com/floodgate-proxy/floodgate/redislimit"
	"github.com/tidwall/gjson"
)

// redisBackend decides every request in Redis: one EVALSHA of the policy's script through the
// helper (EVAL when Redis does not know the script yet), the request paused meanwhile.
type redisBackend struct {
	helper *helper
	policy *config.Policy
	now    func() int64
}

func (b *redisBackend) decide(c *call) (outcome, bool) {
	if b.helper.breaker.open(c.now) {
		return outcome{err: errBreakerOpen}, false
	}
	c.key = append([]byte(nil), c.key...) // the limiter's buffer is reused by other requests meanwhile
	h1, h2 := keyHashes(c.key)
	rkey := b.helper.redisKey(b.policy.Name, h1, h2)
	args := redislimit.Args(b.policy.Compiled, c.cost, c.draw, -1)
	stream := c.ev.stream
	var send func(body []byte, retried bool) error
	send = func(body []byte, retried bool) error {
		return b.helper.post(false, body, b.helper.cfg.TimeoutMs, func(numHeaders, bodySize int) {
			res, noscript, err := readAnswer(numHeaders, bodySize)
			if noscript && !retried {
				if send(command("EVAL", redislimit.Script, rkey, args), true) == nil {
					return
				}
			}
			b.helper.breaker.record(err == nil, b.now())
			if host.SetEffectiveContext(stream) != nil {
				return // the request is gone
			}
			c.finish(outcome{res: res, err: err})
		})
	}
	if err := send(command("EVALSHA", redislimit.ScriptSHA, rkey, args), false); err != nil {
		b.helper.breaker.record(false, c.now)
		return outcome{err: err}, false
	}
	return outcome{}, true
}

// readAnswer reads the helper's answer to one decision in the running callback.
func readAnswer(numHeaders, bodySize int) (res algorithm.Result, noscript bool, err error) {
	status, body, err := helperAnswer(numHeaders, bodySize)
	if err != nil {
		return res, false, err
	}
	answer := gjson.ParseBytes(body)
	if msg := answer.Get("error"); msg.Exists() {
		return res, strings.HasPrefix(msg.String(), "NOSCRIPT"), fmt.Errorf("helper answered %s: %s", status, msg.String())
	}
	if status != "200" {
		return res, false, fmt.Errorf("helper answered %s", status)
	}
	ints, ok := resultInts(answer, make([]int64, 0, 11))
	if !ok {
		return res, false, fmt.Errorf("helper answered %.80q", body)
	}
	res, err = redislimit.Result(ints)
	return res, false, err
}
