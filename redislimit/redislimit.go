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
const ScriptSHA = "79cdfa9592ab19a903486ef70737ce36d56396b3"

// LuaScript is one of floodgate's Redis scripts: its source and the SHA-1 EVALSHA names it by.
type LuaScript struct {
	Name, Source, SHA string
}

// Scripts lists every script floodgate runs in Redis. The helper runs these and nothing else, so
// a script added here is one the helper accepts.
func Scripts() []LuaScript {
	return []LuaScript{{Name: "decide", Source: Script, SHA: ScriptSHA}}
}

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

// Lease is what a proxy of the hybrid backend sends for one key at a sync.
type Lease struct {
	// Release units were reserved for this proxy at ReleaseAtMs (Redis time); it gives them back.
	Release, ReleaseAtMs int64
	// Used and Denied are the units the proxy admitted and denied locally since that reservation.
	Used, Denied int64
	// UsedAtMs (Redis time, no earlier than the last admission; 0 for Redis's now) is when Used
	// are counted: the earlier, the sooner they leave the window.
	UsedAtMs int64
	// Want is how many units to reserve for the proxy's next local decisions.
	Want int64
}

// Grant is Redis's answer to a Lease.
type Grant struct {
	// Units are reserved for the proxy (0 to Want), counted as accepted at AtMs (Redis time).
	Units, AtMs int64
	// The tightest limit after the reservation, as in algorithm.Result.
	Limit, WindowMs, Remaining, ResetAfterMs int64
	// RetryAfterMs is the time until one unit fits, when nothing is left to reserve.
	RetryAfterMs int64
	// SuppressionFactor applies to the proxy's local decisions (suppressed strategy).
	SuppressionFactor float64
}

// LeaseArgs returns the script's ARGV for lease; nowMs as in Args.
func LeaseArgs(p *algorithm.Policy, l Lease, nowMs int64) []string {
	args := Args(p, 1, 0, nowMs)
	return append(args, "lease", strconv.FormatInt(l.Release, 10), strconv.FormatInt(l.ReleaseAtMs, 10),
		strconv.FormatInt(l.Used, 10), strconv.FormatInt(l.Denied, 10), strconv.FormatInt(l.Want, 10), strconv.FormatInt(l.UsedAtMs, 10))
}

// GrantOf reads the script's answer to a lease.
func GrantOf(v []int64) (Grant, error) {
	if len(v) != 8 {
		return Grant{}, fmt.Errorf("redislimit: lease answer of %d values, want 8", len(v))
	}
	return Grant{Units: v[0], AtMs: v[1], Limit: v[2], WindowMs: v[3], Remaining: v[4], ResetAfterMs: v[5],
		RetryAfterMs: v[6], SuppressionFactor: float64(v[7]) / 1e6}, nil
}
