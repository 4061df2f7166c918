// Package redislimit is the Redis side of a decision: Lua scripts that mirror algorithm.Policy's
// operations (Decide, Check, Block, Record, Reset, Refund and Lease; decide.lua for the sliding
// windows, meter.lua for gcra and token_bucket), and the helpers that build their arguments and
// read their answers, whatever the strategy: the caller never branches on it. It has no Redis
// client dependency, so the wasm plugin can use it to speak the REST protocol through an HTTP
// callout.
package redislimit

import (
	_ "embed"
	"errors"
	"fmt"
	"strconv"

	"github.com/floodgate-proxy/floodgate/algorithm"
)

// LuaScript is one of floodgate's Redis scripts: its source and the SHA-1 EVALSHA names it by
// (a test keeps the SHAs current; the plugin avoids linking crypto, which pulls WASI functions
// Envoy lacks).
type LuaScript struct {
	Name, Source, SHA string
}

var (
	//go:embed decide.lua
	decideSource string
	//go:embed meter.lua
	meterSource string

	decideScript = LuaScript{Name: "decide", Source: decideSource, SHA: "225c41f7beb1f6b3d203a13c5e6259bc47657821"}
	meterScript  = LuaScript{Name: "meter", Source: meterSource, SHA: "d650db3892aa3b15440e8313b26747a1306ac8fb"}
)

// Scripts lists every script floodgate runs in Redis. The helper runs these and nothing else, so
// a script added here is one the helper accepts.
func Scripts() []LuaScript {
	return []LuaScript{decideScript, meterScript}
}

// ScriptFor returns the script that decides p's keys.
func ScriptFor(p *algorithm.Policy) LuaScript {
	if p.Strategy().Meter() {
		return meterScript
	}
	return decideScript
}

// Mode is what a call of a policy's script does to the key: one of algorithm.Policy's
// operations. Every mode answers in the shape Result and ResultAt read.
type Mode uint8

const (
	// ModeDecide decides a request: Policy.Decide.
	ModeDecide Mode = iota
	// ModeCheck answers what a decision would under the absolute rule, changing nothing:
	// Policy.Check.
	ModeCheck
	// ModeBlock is ModeCheck that starts the policy's block when it rejects for lack of room:
	// Policy.Block, for a request the plugin turned down on its own view of the key.
	ModeBlock
	// ModeRecord counts Cost units whatever the quota: Policy.Record. Its answer's RetryAfterMs
	// is how long the key has no room.
	ModeRecord
	// ModeReset writes a fresh state: Policy.Reset. It answers what ModeCheck then would.
	ModeReset
	// ModeRefund gives back Cost units admitted at AtMs: Policy.Refund. It answers what ModeCheck
	// then would.
	ModeRefund
)

// modeWords are the modes' words in the scripts' ARGV (none for a decision).
var modeWords = [...]string{ModeCheck: "check", ModeBlock: "block", ModeRecord: "record", ModeReset: "reset", ModeRefund: "refund"}

// Call is one run of a policy's script.
type Call struct {
	// Mode is what the call does (ModeDecide when zero).
	Mode Mode
	// Cost is the request's cost (< 1 counts as 1).
	Cost int64
	// Draw is the caller's random draw in [0, 1) (suppressed strategy, decisions).
	Draw float64
	// NowMs pins the script's clock (tests); < 0 lets it use Redis TIME (production).
	NowMs int64
	// DeadlineMs is a time on Redis's clock: a call that reaches Redis after it changes nothing,
	// and its answer reads as ErrDeadlinePassed. 0 means none.
	DeadlineMs int64
	// AtMs is, for ModeRefund, when the refunded units were admitted, on Redis's clock (the time
	// ResultAt returned with the decision).
	AtMs int64
}

// ErrDeadlinePassed is the answer of a call that reached Redis after its deadline: the script
// changed nothing.
var ErrDeadlinePassed = errors.New("redislimit: the call reached Redis after its deadline: nothing was counted")

// Positions in a decision's answer, and its length.
const (
	ansAllowed = iota
	ansLimit
	ansWindowMs
	ansRemaining
	ansRetryAfterMs
	ansResetAfterMs
	ansSuppressionFactor // × 1e6
	ansSuppressed
	ansDecider
	ansReason
	ansReset
	ansNowMs // Redis's clock when it decided
	answerLen
)

// Positions in a lease's answer, and its length.
const (
	grantUnits = iota
	grantAtMs
	grantLimit
	grantWindowMs
	grantRemaining
	grantResetAfterMs
	grantRetryAfterMs
	grantSuppressionFactor // × 1e6
	grantLen
)

// deadlinePassed is the whole answer of a call that came too late.
const deadlinePassed = -1

// Args returns the ARGV of a call of p's script (see the script's header).
func Args(p *algorithm.Policy, c Call) []string {
	limits := p.Limits()
	meter := p.Strategy().Meter()
	out := make([]string, 0, 8+5*len(limits)+8)
	out = append(out, strconv.FormatInt(max(c.Cost, 1), 10)) // a cost < 1 counts as 1 (and a reset has none)
	if !meter {
		out = append(out, strconv.FormatFloat(c.Draw, 'g', -1, 64))
	}
	out = append(out, optional(c.NowMs >= 0, c.NowMs), optional(c.DeadlineMs > 0, c.DeadlineMs))
	if !meter {
		// A meter's state holds nothing a change of limits would make unreadable (FORMAT.md).
		out = append(out, strconv.Itoa(int(p.Strategy())), strconv.FormatUint(uint64(p.Fingerprint()), 10))
	}
	out = append(out, strconv.FormatInt(p.BlockMs(), 10), strconv.Itoa(len(limits)))
	for i, l := range limits {
		if meter {
			out = append(out, strconv.FormatInt(p.IntervalUs(i), 10), strconv.FormatInt(l.Quota, 10), strconv.FormatInt(l.WindowMs, 10))
			continue
		}
		out = append(out, strconv.FormatInt(l.Quota, 10), strconv.FormatInt(l.WindowMs, 10), strconv.FormatInt(l.GroupMs, 10))
		if p.Strategy() == algorithm.Suppressed {
			out = append(out, strconv.FormatFloat(l.Rate, 'g', -1, 64), strconv.FormatInt(p.HardQuota(i), 10))
		}
	}
	switch {
	case c.Mode == ModeDecide:
	case int(c.Mode) < len(modeWords):
		out = append(out, modeWords[c.Mode])
	default:
		out = append(out, "mode"+strconv.Itoa(int(c.Mode))) // the helper refuses it; a script changes nothing
	}
	if c.Mode == ModeRefund {
		out = append(out, strconv.FormatInt(c.AtMs, 10))
	}
	return out
}

func optional(set bool, v int64) string {
	if !set {
		return ""
	}
	return strconv.FormatInt(v, 10)
}

// Result reads a call's answer (any mode but a lease).
func Result(v []int64) (algorithm.Result, error) {
	res, _, err := ResultAt(v)
	return res, err
}

// ResultAt reads a call's answer (any mode but a lease) and the time on Redis's clock when Redis
// made it, from which a caller bounds the offset between its clock and Redis's (see
// Call.DeadlineMs), and which a refund of the decision names (Call.AtMs).
func ResultAt(v []int64) (res algorithm.Result, redisNowMs int64, err error) {
	if len(v) == 1 && v[0] == deadlinePassed {
		return algorithm.Result{}, 0, ErrDeadlinePassed
	}
	if len(v) != answerLen {
		return algorithm.Result{}, 0, fmt.Errorf("redislimit: answer of %d values, want %d", len(v), answerLen)
	}
	return algorithm.Result{
		Allowed: v[ansAllowed] == 1, Limit: v[ansLimit], WindowMs: v[ansWindowMs], Remaining: v[ansRemaining],
		RetryAfterMs: v[ansRetryAfterMs], ResetAfterMs: v[ansResetAfterMs],
		SuppressionFactor: float64(v[ansSuppressionFactor]) / 1e6, Suppressed: v[ansSuppressed] == 1,
		Decider: int(v[ansDecider]), Reason: algorithm.Reason(v[ansReason]),
		Reset: v[ansReset] == 1, // Changed is a local-store notion: the script writes what it must itself
	}, v[ansNowMs], nil
}

// Lease is what a proxy of the hybrid backend sends for one key at a sync. Times are on
// Redis's clock.
type Lease = algorithm.Lease

// Grant is Redis's answer to a Lease. AtMs is on Redis's clock.
type Grant = algorithm.Grant

// LeaseArgs returns the ARGV of a lease of p's script; c gives the clock and the deadline (its
// Mode, Cost and Draw do not apply: the lease carries its units).
func LeaseArgs(p *algorithm.Policy, l Lease, c Call) []string {
	args := Args(p, Call{Cost: 1, NowMs: c.NowMs, DeadlineMs: c.DeadlineMs})
	return append(args, "lease", strconv.FormatInt(l.Release, 10), strconv.FormatInt(l.ReleaseAtMs, 10),
		strconv.FormatInt(l.Used, 10), strconv.FormatInt(l.Denied, 10), strconv.FormatInt(l.Want, 10), strconv.FormatInt(l.UsedAtMs, 10),
		strconv.FormatInt(l.Rejected, 10))
}

// GrantOf reads a lease's answer.
func GrantOf(v []int64) (Grant, error) {
	if len(v) == 1 && v[0] == deadlinePassed {
		return Grant{}, ErrDeadlinePassed
	}
	if len(v) != grantLen {
		return Grant{}, fmt.Errorf("redislimit: lease answer of %d values, want %d", len(v), grantLen)
	}
	return Grant{Units: v[grantUnits], AtMs: v[grantAtMs], Limit: v[grantLimit], WindowMs: v[grantWindowMs],
		Remaining: v[grantRemaining], ResetAfterMs: v[grantResetAfterMs], RetryAfterMs: v[grantRetryAfterMs],
		SuppressionFactor: float64(v[grantSuppressionFactor]) / 1e6}, nil
}
