// Package algorithm decides whether a request is within its limits. It is the single source of
// truth for the decision contract (SPEC.md): the plugin's local store, the Redis Lua scripts and
// the hybrid mode all mirror it. Strategies: sliding windows (Absolute, Suppressed) and meters
// (GCRA, TokenBucket).
//
// It has no host or I/O dependency. A Policy (one strategy, one or more limits) is compiled once
// from the configuration; each decision is a pure function of the previous state bytes, the time
// in milliseconds, the request's cost and a random draw made by the caller, and writes the next
// state into a caller-supplied buffer without allocating. The state's binary layout is described
// in FORMAT.md.
package algorithm

import (
	"errors"
	"fmt"
	"math"
)

// MaxBuckets is the most buckets one limit may need (ceil(window/group)). It bounds the state of
// a key: 1000 buckets are 8 KB (absolute) or 12 KB (suppressed) per limit, which every decision
// copies in and out of shared data. A 100 ms grouping covers windows up to 100 s; longer windows
// group more coarsely (see DefaultGroupMs), which only ever makes the limiter stricter, never
// looser, because a bucket is counted until its latest request leaves the window.
const MaxBuckets = 1000

// MaxQuota is the largest window quota; counters are 32-bit.
const MaxQuota = math.MaxInt32

// DefaultGroupMs is the bucket width used when the configuration gives none: 100 ms, or coarser
// for windows longer than MaxBuckets × 100 ms so that a limit never needs more than MaxBuckets.
func DefaultGroupMs(windowMs int64) int64 {
	return max(100, (windowMs+MaxBuckets-1)/MaxBuckets)
}

// Limit is one rate limit of a policy: Quota units per sliding window of WindowMs, counted in
// buckets of GroupMs.
type Limit struct {
	// Quota is Q, the number of cost units admitted in any window.
	Quota int64
	// WindowMs is the window length in milliseconds (a whole number of seconds, >= 1 s).
	WindowMs int64
	// GroupMs is the bucket width in milliseconds.
	GroupMs int64
	// Rate is the limit's rate per second (Quota / window, or the configured fractional rate).
	// The suppressed strategy converges on it.
	Rate float64
}

// quotaEpsilon absorbs float error in rate × window (100.0/60 × 60 is 99.99999999999999).
const quotaEpsilon = 1e-9

// NewLimit returns the limit of rate per second over a window of windowS seconds, with
// Q = floor(rate × window). groupMs 0 means DefaultGroupMs.
func NewLimit(rate float64, windowS, groupMs int64) (Limit, error) {
	if math.IsNaN(rate) || math.IsInf(rate, 0) || rate <= 0 {
		return Limit{}, fmt.Errorf("rate %v: must be a finite number > 0", rate)
	}
	if windowS < 1 {
		return Limit{}, fmt.Errorf("window %d s: must be >= 1", windowS)
	}
	q := math.Floor(rate*float64(windowS) + quotaEpsilon)
	if q < 1 {
		return Limit{}, fmt.Errorf("rate %v per second over %d s gives a quota of 0: raise rate or window", rate, windowS)
	}
	if q > MaxQuota {
		return Limit{}, fmt.Errorf("rate %v per second over %d s gives a quota above %d", rate, windowS, MaxQuota)
	}
	return newLimit(int64(q), windowS, groupMs, rate)
}

// PerPeriod returns the limit of exactly n units per period of periodS seconds ("100/m" is
// PerPeriod(100, 60, 0)). groupMs 0 means DefaultGroupMs.
func PerPeriod(n, periodS, groupMs int64) (Limit, error) {
	if n < 1 || n > MaxQuota {
		return Limit{}, fmt.Errorf("%d requests: must be between 1 and %d", n, MaxQuota)
	}
	if periodS < 1 {
		return Limit{}, fmt.Errorf("period %d s: must be >= 1", periodS)
	}
	return newLimit(n, periodS, groupMs, float64(n)/float64(periodS))
}

func newLimit(q, windowS, groupMs int64, rate float64) (Limit, error) {
	if windowS > math.MaxInt32/1000 {
		return Limit{}, fmt.Errorf("window %d s: too long", windowS)
	}
	l := Limit{Quota: q, WindowMs: windowS * 1000, GroupMs: groupMs, Rate: rate}
	if l.GroupMs == 0 {
		l.GroupMs = DefaultGroupMs(l.WindowMs)
	}
	if err := l.validate(); err != nil {
		return Limit{}, err
	}
	return l, nil
}

// MaxRefillMs bounds the time a meter (GCRA, TokenBucket) takes to refill completely: 31 days,
// the longest window. It keeps every time a meter computes, in microseconds, below 2^53, so that
// Redis's Lua (whose numbers are doubles) computes exactly what Go does.
const MaxRefillMs = 31 * 86400 * 1000

// NewTokenBucket returns the limit of a bucket of burst tokens refilled at rate tokens per second
// (fractional rates allowed), for the TokenBucket strategy. Its Quota is the burst and its
// WindowMs the time an empty bucket takes to refill, rounded up to whole seconds.
func NewTokenBucket(rate float64, burst int64) (Limit, error) {
	if math.IsNaN(rate) || math.IsInf(rate, 0) || rate <= 0 {
		return Limit{}, fmt.Errorf("rate %v: must be a finite number > 0", rate)
	}
	if burst < 1 || burst > MaxQuota {
		return Limit{}, fmt.Errorf("burst %d: must be between 1 and %d", burst, MaxQuota)
	}
	refillS := math.Ceil(float64(burst)/rate - quotaEpsilon)
	if refillS*1000 > MaxRefillMs {
		return Limit{}, fmt.Errorf("burst %d at rate %v per second takes %.0f s to refill, more than %d s", burst, rate, refillS, MaxRefillMs/1000)
	}
	l := Limit{Quota: burst, WindowMs: max(int64(refillS), 1) * 1000, Rate: rate}
	if err := l.validateMeter(); err != nil {
		return Limit{}, err
	}
	return l, nil
}

// IntervalUs is the limit's emission interval for a meter: 1/Rate seconds, rounded up to the
// microsecond (so that a meter never admits faster than Rate), at least 1 µs.
func (l Limit) IntervalUs() int64 {
	x := 1e6 / l.Rate
	return max(int64(math.Ceil(x-x*1e-12)), 1) // 1e6/(100/60.0) is 600000.0000000001
}

// validateMeter checks a limit of a meter: a burst (Quota), a rate, a whole-second window, and
// a refill time (burst × interval) within MaxRefillMs. GroupMs does not apply.
func (l Limit) validateMeter() error {
	switch {
	case l.Quota < 1 || l.Quota > MaxQuota:
		return fmt.Errorf("%w: burst %d must be between 1 and %d", errLimit, l.Quota, MaxQuota)
	case math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0) || l.Rate <= 0:
		return fmt.Errorf("%w: rate %v must be a finite number > 0", errLimit, l.Rate)
	case l.WindowMs < 1000 || l.WindowMs%1000 != 0 || l.WindowMs > MaxRefillMs:
		return fmt.Errorf("%w: window %d ms must be a whole number of seconds between 1 and %d", errLimit, l.WindowMs, MaxRefillMs/1000)
	case l.IntervalUs() > MaxRefillMs*1000/l.Quota:
		return fmt.Errorf("%w: a burst of %d at %v per second takes more than %d s to refill", errLimit, l.Quota, l.Rate, MaxRefillMs/1000)
	}
	return nil
}

// Buckets is the number of buckets the limit needs: ceil(window / group).
func (l Limit) Buckets() int {
	return int((l.WindowMs + l.GroupMs - 1) / l.GroupMs)
}

var errLimit = errors.New("invalid limit")

func (l Limit) validate() error {
	switch {
	case l.Quota < 1 || l.Quota > MaxQuota:
		return fmt.Errorf("%w: quota %d must be between 1 and %d", errLimit, l.Quota, MaxQuota)
	case l.WindowMs < 1000 || l.WindowMs%1000 != 0 || l.WindowMs > math.MaxInt32:
		return fmt.Errorf("%w: window %d ms must be a whole number of seconds >= 1", errLimit, l.WindowMs)
	case l.GroupMs < 1:
		return fmt.Errorf("%w: group_ms %d must be >= 1", errLimit, l.GroupMs)
	case l.GroupMs > l.WindowMs:
		return fmt.Errorf("%w: group_ms %d is longer than the window (%d ms)", errLimit, l.GroupMs, l.WindowMs)
	case l.Buckets() > MaxBuckets:
		return fmt.Errorf("%w: window %d ms in buckets of %d ms needs %d buckets, more than %d: raise group_ms to at least %d",
			errLimit, l.WindowMs, l.GroupMs, l.Buckets(), MaxBuckets, DefaultGroupMs(l.WindowMs))
	case math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0) || l.Rate <= 0:
		return fmt.Errorf("%w: rate %v must be a finite number > 0", errLimit, l.Rate)
	}
	return nil
}
