package redislimit

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/floodgate-proxy/floodgate/algorithm"
)

// MaxPipelineRecords bounds the state records (buckets, over every limit of every key) one
// helper call may make Redis read and write. A script's run time follows the records of its
// key's state (0.1 to 0.2 µs each in Redis 7, see README's Operations section), so this keeps
// one /pipeline call within 10 to 20 ms of Redis time whatever its keys: 500 one-second keys
// (10 records each) fit, as do 6 keys of 16 limits of 1000 buckets. The helper refuses a
// pipeline above it; the hybrid backend cuts its batches below it.
const MaxPipelineRecords = 100_000

// Records is the cost of one call of a decision or lease of p: the state records the script
// reads and writes at most (every bucket of every limit of a sliding window; one time per limit
// of a meter).
func Records(p *algorithm.Policy) int {
	if p.Strategy().Meter() {
		return len(p.Limits())
	}
	n := 0
	for _, l := range p.Limits() {
		n += l.Buckets()
	}
	return n
}

// Check tells whether args are arguments the plugin could send to the script (its ARGV, the key
// apart), and returns the call's cost in state records (see Records). Arguments outside what a
// valid policy produces are refused: they could make a script run for long, or choose its clock.
// A script without a rule here is refused.
func (s LuaScript) Check(args []string) (records int, err error) {
	a := argv{args: args}
	switch s.Name {
	case "decide":
		records = a.decide()
	case "meter":
		records = a.meter()
	default:
		return 0, fmt.Errorf("script %s has no argument rule (redislimit.LuaScript.Check)", s.Name)
	}
	if len(a.errs) > 0 {
		return 0, fmt.Errorf("script %s: %w", s.Name, errors.Join(a.errs...))
	}
	return records, nil
}

// argv reads a script's ARGV in order, collecting what is wrong.
type argv struct {
	args []string
	next int
	errs []error
}

func (a *argv) fail(format string, v ...any) { a.errs = append(a.errs, fmt.Errorf(format, v...)) }

// take returns the next argument, or false (and an error) when there is none.
func (a *argv) take(what string) (string, bool) {
	if a.next >= len(a.args) {
		a.fail("%d arguments: %s is missing", len(a.args), what)
		return "", false
	}
	a.next++
	return a.args[a.next-1], true
}

func (a *argv) integer(what string, lo, hi int64) int64 {
	s, ok := a.take(what)
	if !ok {
		return lo
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		a.fail("argument %d (%s) %.20q: want an integer in [%d, %d]", a.next, what, s, lo, hi)
		return lo
	}
	return v
}

func (a *argv) number(what string, lo, below float64) float64 {
	s, ok := a.take(what)
	if !ok {
		return lo
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v >= lo && v < below) {
		a.fail("argument %d (%s) %.20q: want a number in [%v, %v)", a.next, what, s, lo, below)
		return lo
	}
	return v
}

// clock: the plugin leaves now empty (Redis TIME); a deadline is empty or a time in ms.
func (a *argv) clock() {
	if s, ok := a.take("now"); ok && s != "" {
		a.fail("argument %d (now) must be empty: calls through the helper run on Redis's clock", a.next)
	}
	if s, ok := a.take("deadline"); ok && s != "" {
		a.next--
		a.integer("deadline", 0, math.MaxInt64)
	}
}

// header reads strategy, fingerprint, the block and the number of limits.
func (a *argv) header(strategies ...algorithm.Strategy) (algorithm.Strategy, int) {
	st := algorithm.Strategy(a.integer("strategy", 0, math.MaxUint8))
	if !slices.Contains(strategies, st) {
		a.fail("strategy %d: want one of %v", st, strategies)
	}
	a.integer("fingerprint", 0, math.MaxUint32)
	a.block()
	return st, a.limits()
}

func (a *argv) limits() int { return int(a.integer("limits", 1, algorithm.MaxLimits)) }

// block reads the policy's block.
func (a *argv) block() { a.integer("block_ms", 0, algorithm.MaxBlockMs) }

// mode reads what follows the limits: nothing (a decision), a mode's word and its arguments
// ('refund' and at_ms; 'lease' and 7 integers). countsOnResponse says whether the strategy may
// check, block and record.
func (a *argv) mode(countsOnResponse bool) {
	if a.next == len(a.args) || len(a.errs) > 0 {
		return
	}
	word, _ := a.take("mode")
	var ints []string
	switch word {
	case "check", "block", "record":
		if !countsOnResponse {
			a.fail("mode %s: the strategy does not count on the response", word)
			return
		}
	case "reset":
	case "refund":
		ints = []string{"at_ms"}
	case "lease":
		ints = []string{"release", "release_at_ms", "used", "denied", "want", "used_at_ms", "rejected"}
	default:
		a.fail("argument %d %.20q: the limits end at %d, or a mode follows (check, block, record, reset, refund, lease)", a.next, word, a.next-1)
		return
	}
	if len(a.args)-a.next != len(ints) {
		a.fail("%d arguments: mode %s takes %d after it", len(a.args), word, len(ints))
		return
	}
	for _, what := range ints {
		a.integer(what, 0, math.MaxInt64)
	}
}

// decide checks decide.lua's ARGV (see its header and Args): sliding windows.
func (a *argv) decide() int {
	a.integer("cost", 1, algorithm.MaxQuota)
	a.number("draw", 0, 1)
	a.clock()
	st, n := a.header(algorithm.Absolute, algorithm.Suppressed)
	if len(a.errs) > 0 {
		return 0
	}
	limits := make([]algorithm.Limit, n)
	records := 0
	for i := range limits {
		l := algorithm.Limit{Quota: a.integer("quota", 1, algorithm.MaxQuota), WindowMs: a.integer("window_ms", 1000, math.MaxInt32),
			GroupMs: a.integer("group_ms", 1, math.MaxInt32)}
		l.Rate = float64(l.Quota) * 1000 / float64(l.WindowMs)
		if st == algorithm.Suppressed {
			l.Rate = a.number("rate", math.SmallestNonzeroFloat64, math.Inf(1))
			if hard := a.integer("hard quota", 1, algorithm.MaxQuota); hard < l.Quota || hard > 1000*l.Quota {
				a.fail("limit %d: hard quota %d does not fit quota %d", i, hard, l.Quota)
			}
		}
		if len(a.errs) > 0 {
			return 0
		}
		limits[i] = l
		records += l.Buckets()
	}
	a.mode(st.CountsOnResponse() == nil)
	// The limits' own rules (window, group, at most MaxBuckets buckets) as the configuration
	// checks them.
	if _, err := algorithm.NewPolicy(algorithm.Absolute, 1, limits...); err != nil {
		a.errs = append(a.errs, err)
	}
	return records
}

// meter checks meter.lua's ARGV (see its header and Args): gcra and token_bucket, one time per
// limit whatever its numbers.
func (a *argv) meter() int {
	a.integer("cost", 1, algorithm.MaxQuota)
	a.clock()
	a.block()
	n := a.limits() // no strategy or fingerprint: a meter's state has none (FORMAT.md)
	for range n {
		if len(a.errs) > 0 {
			return 0
		}
		a.integer("interval_us", 1, algorithm.MaxRefillMs*1000)
		a.integer("burst", 1, algorithm.MaxQuota)
		a.integer("window_ms", 1, math.MaxInt32)
	}
	a.mode(true)
	return n
}
