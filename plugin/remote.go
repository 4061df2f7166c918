package plugin

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/config"
	"github.com/floodgate-proxy/floodgate/internal/host"
	"github.com/floodgate-proxy/floodgate/redislimit"
	"github.com/tidwall/gjson"
)

// errBreakerOpen is the failure of a decision not attempted because the breaker is open.
var errBreakerOpen = errors.New("redis helper breaker open: not calling it")

// remote decides redis policies through the helper cluster: one EVALSHA per decision (EVAL when
// Redis does not know the script yet), the request paused meanwhile. A breaker in shared data,
// common to every worker of the proxy, stops the calls for a cool-down after repeated failures,
// so that a down helper never makes requests queue behind callouts.
type remote struct {
	cfg        *config.Redis
	prefix     string
	breakerKey string
	headers    [][2]string
	opened     host.Metric
}

func newRemote(cfg *config.Config, opts Options) (*remote, error) {
	token, err := helperToken(cfg.Redis)
	if err != nil {
		return nil, err
	}
	r := &remote{cfg: cfg.Redis, prefix: cfg.SharedData.Prefix,
		breakerKey: cfg.SharedData.Prefix + ":breaker:" + cfg.Redis.Cluster,
		headers: [][2]string{{":method", "POST"}, {":path", "/"}, {":authority", cfg.Redis.Authority},
			{"authorization", "Bearer " + token}, {"content-type", "application/json"}}}
	if r.opened, err = host.DefineMetric(host.Counter, "floodgate.redis.breaker_opened"); err != nil {
		return nil, fmt.Errorf("define metric: %w", err)
	}
	return r, nil
}

// redisKey is the Redis key of a limiter key known by its hashes (keyHashes): a fixed-size name
// under one hash tag, so that Redis Cluster keeps the key on one node and hostile keys cannot
// make Redis keys of any size.
func (r *remote) redisKey(policy string, h1, h2 uint64) string {
	return "{" + r.prefix + ":" + policy + ":" + strconv.FormatUint(h1, 16) + strconv.FormatUint(h2, 16) + "}"
}

func command(verb, script, key string, args []string) []byte {
	var b strings.Builder
	b.WriteString(`["` + verb + `",`)
	b.WriteString(strconv.Quote(script))
	b.WriteString(`,"1",`)
	b.WriteString(strconv.Quote(key))
	for _, a := range args {
		b.WriteByte(',')
		b.WriteString(strconv.Quote(a))
	}
	b.WriteByte(']')
	return []byte(b.String())
}

// decide sends one decision; done runs from the http call's callback, with stream made the
// effective context first. An error means no call was made (the caller applies the failure mode).
func (r *remote) decide(ps *policyState, key []byte, cost int64, draw float64, stream uint32, now func() int64, done func(algorithm.Result, error)) error {
	h1, h2 := keyHashes(key)
	rkey := r.redisKey(ps.cfg.Name, h1, h2)
	args := redislimit.Args(ps.cfg.Compiled, cost, draw, -1)
	var send func(body []byte, retried bool) error
	send = func(body []byte, retried bool) error {
		_, err := host.HTTPCall(r.cfg.Cluster, r.headers, body, r.cfg.TimeoutMs, func(numHeaders, bodySize, _ int) {
			res, noscript, err := readAnswer(numHeaders, bodySize)
			if noscript && !retried {
				if err := send(command("EVAL", redislimit.Script, rkey, args), true); err == nil {
					return
				}
			}
			r.record(err == nil, now())
			if host.SetEffectiveContext(stream) != nil {
				return // the request is gone
			}
			done(res, err)
		})
		return err
	}
	if err := send(command("EVALSHA", redislimit.ScriptSHA, rkey, args), false); err != nil {
		r.record(false, now())
		return fmt.Errorf("call %s: %w", r.cfg.Cluster, err)
	}
	return nil
}

// helperAnswer reads the status and the body of the helper's answer in the running callback.
func helperAnswer(numHeaders, bodySize int) (status string, body []byte, err error) {
	if numHeaders == 0 {
		return "", nil, errors.New("the call was reset")
	}
	headers, err := host.HTTPCallResponseHeaders()
	if err != nil {
		return "", nil, fmt.Errorf("reading the answer: %w", err)
	}
	for _, kv := range headers {
		if kv[0] == ":status" {
			status = kv[1]
		}
	}
	body, _ = host.HTTPCallResponseBody(bodySize)
	return status, body, nil
}

// resultInts reads an answer's "result", an array of integers, into dst; ok is false when it
// is not an array.
func resultInts(answer gjson.Result, dst []int64) (ints []int64, ok bool) {
	values := answer.Get("result")
	if !values.IsArray() {
		return dst, false
	}
	for _, v := range values.Array() {
		dst = append(dst, v.Int())
	}
	return dst, true
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

// The breaker's shared-data value: consecutive failures u32, then open-until ms i64.
const breakerSize = 12

// breakerOpen tells whether calls are suspended now.
func (r *remote) breakerOpen(now int64) bool {
	v, _, err := host.SharedData(r.breakerKey)
	return err == nil && len(v) == breakerSize && int64(binary.LittleEndian.Uint64(v[4:])) > now
}

// record counts a success (clearing the failures, written only when there were some) or a
// failure (opening the breaker at the threshold), with compare-and-swap.
func (r *remote) record(ok bool, now int64) {
	opening := false
	err := casUpdate(r.breakerKey, func(v []byte) ([]byte, bool) {
		opening = false
		var failures uint32
		var until int64
		if len(v) == breakerSize {
			failures, until = binary.LittleEndian.Uint32(v), int64(binary.LittleEndian.Uint64(v[4:]))
		}
		switch {
		case ok && failures == 0:
			return nil, false
		case ok:
			failures = 0
		case until > now:
			return nil, false // already open
		default:
			failures++
			if failures >= r.cfg.BreakerFailures {
				failures, until, opening = 0, now+r.cfg.BreakerCooldownMs, true
			}
		}
		return binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint32(nil, failures), uint64(until)), true
	})
	if err == nil && opening {
		_ = r.opened.Add(1)
		host.Log(host.LevelWarn, fmt.Sprintf("floodgate: redis helper %s failed %d times in a row: not calling it for %d ms",
			r.cfg.Cluster, r.cfg.BreakerFailures, r.cfg.BreakerCooldownMs))
	}
}
