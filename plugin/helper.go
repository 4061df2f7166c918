package plugin

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/floodgate-proxy/floodgate/config"
	"github.com/floodgate-proxy/floodgate/internal/host"
	"github.com/tidwall/gjson"
)

// helper is the plugin's side of the Redis helper cluster: the Upstash-compatible REST protocol
// over proxy_http_call (POST / with one command, POST /pipeline with several), the Redis names of
// keys, and the breaker every worker of the proxy shares.
type helper struct {
	cfg     *config.Redis
	prefix  string
	headers [][2]string // of POST /
	// pipelineHeaders are those of POST /pipeline.
	pipelineHeaders [][2]string
	breaker         *breaker
	clock           redisClock
	// rootID is the root context: calls that must outlive the request that caused them (a
	// refund, a record, a lease sent at once) are made from it.
	rootID uint32
	// Error logs of background calls are rate-limited to one a second.
	lastLogMs int64
	quiet     int
}

// logf logs at error level, at most once a second, saying how many lines it held back.
func (h *helper) logf(now int64, format string, args ...any) {
	logLimited(&h.lastLogMs, &h.quiet, now, format, args...)
}

// fromRoot runs fn with the root context effective (a call made by a request's context is
// cancelled with the request), then makes the request's context stream effective again.
func (h *helper) fromRoot(stream uint32, fn func()) {
	if h.rootID != 0 {
		_ = host.SetEffectiveContext(h.rootID)
		defer host.SetEffectiveContext(stream)
	}
	fn()
}

// redisClock bounds from below how far Redis's clock is ahead of this VM's, from the decisions'
// answers: Redis stamped each at some moment between its call's send and its answer, so its
// time minus the answer's local time is never more than the true offset. The tightest bound of
// the last minute is kept (clocks drift and step; an older bound is replaced by a fresh one).
type redisClock struct {
	lowMs, at int64
	known     bool
}

// offsetMaxAgeMs is how long the tightest bound is kept before a fresh one replaces it.
const offsetMaxAgeMs = 60_000

// observe takes Redis's time of an answer received at local time localNow.
func (c *redisClock) observe(redisNow, localNow int64) {
	if b := redisNow - localNow; !c.known || b > c.lowMs || localNow-c.at > offsetMaxAgeMs {
		c.lowMs, c.at, c.known = b, localNow, true
	}
}

// deadline returns local time localMs on Redis's clock, never later than it really is there, or
// 0 (no deadline) before any answer came.
func (c *redisClock) deadline(localMs int64) int64 {
	if !c.known {
		return 0
	}
	return localMs + c.lowMs
}

func newHelper(cfg *config.Config) (*helper, error) {
	r := cfg.Redis
	token, err := helperToken(r)
	if err != nil {
		return nil, err
	}
	headers := func(path string) [][2]string {
		return [][2]string{{":method", "POST"}, {":path", path}, {":authority", r.Authority},
			{"authorization", "Bearer " + token}, {"content-type", "application/json"}}
	}
	b, err := newBreaker(cfg)
	if err != nil {
		return nil, err
	}
	return &helper{cfg: r, prefix: cfg.SharedData.Prefix, headers: headers("/"), pipelineHeaders: headers("/pipeline"),
		breaker: b}, nil
}

// redisKey is the Redis key of a limiter key known by its hashes (keyHashes): a fixed-size name
// under one hash tag, so that Redis Cluster keeps the key on one node and hostile keys cannot
// make Redis keys of any size.
func (h *helper) redisKey(policy string, h1, h2 uint64) string {
	return "{" + h.prefix + ":" + policy + ":" + strconv.FormatUint(h1, 16) + strconv.FormatUint(h2, 16) + "}"
}

// command renders one script call as the REST protocol's JSON array.
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

// post sends body to the helper (POST /pipeline when pipeline is set, else POST /); answer runs
// in the callout's callback. An error means no call was made.
func (h *helper) post(pipeline bool, body []byte, timeoutMs uint32, answer func(numHeaders, bodySize int)) error {
	headers := h.headers
	if pipeline {
		headers = h.pipelineHeaders
	}
	if _, err := host.HTTPCall(h.cfg.Cluster, headers, body, timeoutMs, func(numHeaders, bodySize, _ int) {
		answer(numHeaders, bodySize)
	}); err != nil {
		return fmt.Errorf("call %s: %w", h.cfg.Cluster, err)
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
