package redislimit

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/floodgate-proxy/floodgate/algorithm"
)

// MaxPipelineRecords bounds the state records (buckets, over every limit of every key) one
// helper call may make Redis read and write. A script's run time follows the records of its
// key's state (about 1 µs each in Redis 7, see README's Operations section), so this keeps one
// /pipeline call near 100 ms of Redis time whatever its keys: 500 one-second keys
// (10 records each) fit, as do 6 keys of 16 limits of 1000 buckets. The helper refuses a
// pipeline above it; the hybrid backend cuts its batches below it.
const MaxPipelineRecords = 100_000

// Records is the cost of one call of a decision or lease of p: the state records the script
// reads and writes (every bucket of every limit).
func Records(p *algorithm.Policy) int {
	n := 0
	for _, l := range p.Limits() {
		n += l.Buckets()
	}
	return n
}

// Check tells whether args are arguments the plugin could send to the script (its ARGV, the key
// apart), and returns the call's cost in state records (see Records). Arguments outside what a
// valid policy produces are refused: they could make a script run for long (a limit of a
// million buckets), or choose its clock. A script without a rule here is refused.
func (s LuaScript) Check(args []string) (records int, err error) {
	switch s.Name {
	case "decide":
		records, err = checkDecide(args)
	default:
		return 0, fmt.Errorf("script %s has no argument rule (redislimit.LuaScript.Check)", s.Name)
	}
	if err != nil {
		return 0, fmt.Errorf("script %s: %w", s.Name, err)
	}
	return records, nil
}

// checkDecide checks the ARGV of decide.lua (see its header and Args, LeaseArgs).
func checkDecide(args []string) (int, error) {
	if len(args) < 6 {
		return 0, fmt.Errorf("%d arguments, want at least 6", len(args))
	}
	var errs []error
	integer := func(i int, what string, lo, hi int64) int64 {
		v, err := strconv.ParseInt(args[i], 10, 64)
		if err != nil || v < lo || v > hi {
			errs = append(errs, fmt.Errorf("argument %d (%s) %.20q: want an integer in [%d, %d]", i+1, what, args[i], lo, hi))
		}
		return v
	}
	number := func(i int, what string) float64 {
		v, err := strconv.ParseFloat(args[i], 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			errs = append(errs, fmt.Errorf("argument %d (%s) %.20q: want a finite number", i+1, what, args[i]))
		}
		return v
	}
	integer(0, "cost", 1, algorithm.MaxQuota)
	if d := number(1, "draw"); d < 0 || d >= 1 {
		errs = append(errs, fmt.Errorf("argument 2 (draw) %v: want [0, 1)", d))
	}
	if args[2] != "" {
		errs = append(errs, errors.New("argument 3 (now) must be empty: calls through the helper run on Redis's clock"))
	}
	strategy := algorithm.Strategy(integer(3, "strategy", int64(algorithm.Absolute), int64(algorithm.Suppressed)))
	integer(4, "fingerprint", 0, math.MaxUint32)
	n := int(integer(5, "limits", 1, algorithm.MaxLimits))
	if len(errs) > 0 {
		return 0, errors.Join(errs...)
	}
	end := 6 + 6*n
	switch {
	case len(args) == end:
	case len(args) == end+7 && args[end] == "lease":
		for i, what := range []string{"release", "release_at_ms", "used", "denied", "want", "used_at_ms"} {
			integer(end+1+i, what, 0, math.MaxInt64)
		}
	default:
		return 0, fmt.Errorf("%d arguments: %d limits take %d, or %d in lease mode", len(args), n, end, end+7)
	}
	limits := make([]algorithm.Limit, n)
	records := 0
	for i := range limits {
		o := 6 + 6*i
		l := algorithm.Limit{Quota: integer(o, "quota", 1, algorithm.MaxQuota), WindowMs: integer(o+1, "window_ms", 1000, math.MaxInt32),
			GroupMs: integer(o+2, "group_ms", 1, math.MaxInt32), Rate: number(o+3, "rate")}
		hard := integer(o+4, "hard quota", 1, algorithm.MaxQuota)
		buckets := integer(o+5, "buckets", 1, algorithm.MaxBuckets)
		if len(errs) > 0 {
			break
		}
		if hard < l.Quota || hard > 1000*l.Quota || (strategy == algorithm.Absolute && hard != l.Quota) {
			errs = append(errs, fmt.Errorf("limit %d: hard quota %d does not fit quota %d", i, hard, l.Quota))
		}
		if int(buckets) != l.Buckets() {
			errs = append(errs, fmt.Errorf("limit %d: %d buckets, the window and group make %d", i, buckets, l.Buckets()))
		}
		limits[i] = l
		records += int(buckets)
	}
	if len(errs) > 0 {
		return 0, errors.Join(errs...)
	}
	// The policy's own rules (window, group, buckets, rate) as the plugin's configuration checks them.
	if _, err := algorithm.NewPolicy(algorithm.Absolute, 1, limits...); err != nil {
		return 0, err
	}
	return records, nil
}
