// Package redislimit is the Redis side of a decision: a Lua script (decide.lua) that mirrors
// algorithm.Policy.Decide on the same state format, and the helpers that build its arguments
// and read its answer. It has no Redis client dependency, so the wasm plugin can use it to speak
// the REST protocol through an HTTP callout.
package redislimit

import (
	_ "embed"
	"fmt"
	"strconv"

	"github.com/floodgate-proxy/floodgate/algorithm"
)

// Script is the Lua source of one decision.
//
//go:embed decide.lua
var Script string

// ScriptSHA is the SHA-1 of Script, the name EVALSHA takes (a test keeps it current; the plugin
// avoids linking crypto, which pulls WASI functions Envoy lacks).
const ScriptSHA = "8a765feba577ecfd0d97b4fcbed92265e91d57b1"

// Args returns the script's ARGV for a decision of cost units with draw; nowMs < 0 lets the
// script use Redis TIME (production), a value pins the clock (tests).
func Args(p *algorithm.Policy, cost int64, draw float64, nowMs int64) []string {
	now := ""
	if nowMs >= 0 {
		now = strconv.FormatInt(nowMs, 10)
	}
	limits := p.Limits()
	out := make([]string, 0, 6+6*len(limits))
	out = append(out, strconv.FormatInt(cost, 10), strconv.FormatFloat(draw, 'g', -1, 64), now,
		strconv.Itoa(int(p.Strategy())), strconv.FormatUint(uint64(p.Fingerprint()), 10), strconv.Itoa(len(limits)))
	for i, l := range limits {
		out = append(out, strconv.FormatInt(l.Quota, 10), strconv.FormatInt(l.WindowMs, 10), strconv.FormatInt(l.GroupMs, 10),
			strconv.FormatFloat(l.Rate, 'g', -1, 64), strconv.FormatInt(p.HardQuota(i), 10), strconv.Itoa(l.Buckets()))
	}
	return out
}

// Result reads the script's answer.
func Result(v []int64) (algorithm.Result, error) {
	if len(v) != 11 {
		return algorithm.Result{}, fmt.Errorf("redislimit: answer of %d values, want 11", len(v))
	}
	return algorithm.Result{
		Allowed: v[0] == 1, Limit: v[1], WindowMs: v[2], Remaining: v[3], RetryAfterMs: v[4], ResetAfterMs: v[5],
		SuppressionFactor: float64(v[6]) / 1e6, Suppressed: v[7] == 1, Decider: int(v[8]), Reason: algorithm.Reason(v[9]),
		Reset: v[10] == 1, // Changed is a local-store notion: the script writes what it must itself
	}, nil
}
