package algorithm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
)

// Strategy is how a policy decides near and above its quota.
type Strategy uint8

const (
	// Absolute admits iff the cost fits in what is left of every window, else rejects with the
	// time after which it would fit. Rejected requests are not counted.
	Absolute Strategy = 1
	// Suppressed admits below the soft quota, sheds a growing share of attempts between the soft
	// and the hard quota so that the admitted rate converges on the limit's rate, and rejects
	// above the hard quota. Every attempt is recorded.
	Suppressed Strategy = 2
	// GCRA is the generic cell rate algorithm (a leaky bucket used as a meter): a limit of N per
	// period admits one unit every period/N on average, with bursts of up to N.
	GCRA Strategy = 3
	// TokenBucket is a bucket of burst tokens refilled at rate per second (limits made by
	// NewTokenBucket); a request takes its cost in tokens, or is rejected when there are not
	// enough. It is the same meter as GCRA, configured by rate and burst.
	TokenBucket Strategy = 4
)

// String returns the strategy's configuration name.
func (s Strategy) String() string {
	switch s {
	case Absolute:
		return "absolute"
	case Suppressed:
		return "suppressed"
	case GCRA:
		return "gcra"
	case TokenBucket:
		return "token_bucket"
	}
	return fmt.Sprintf("strategy(%d)", uint8(s))
}

// Meter tells whether the strategy is a meter (GCRA, TokenBucket), whose state is one
// theoretical arrival time per limit, rather than a sliding window of buckets.
func (s Strategy) Meter() bool { return s == GCRA || s == TokenBucket }

// MaxLimits is the most limits one policy may have.
const MaxLimits = 16

// Policy is a compiled, immutable set of limits decided together. It is safe for concurrent use.
type Policy struct {
	strategy    Strategy
	hardFactor  float64
	limits      []compiled
	size        int
	fingerprint uint32
}

type compiled struct {
	Limit
	hard    int64 // H = floor(Q × h) for suppressed, Q for absolute
	buckets int
	offset  int // byte offset of the limit's record in the state
	// Meters: the emission interval T and the burst tolerance burst × T, in microseconds.
	intervalUs, toleranceUs int64
}

// NewPolicy compiles limits decided together with strategy. hardLimitFactor (h >= 1) sets the
// hard quota H = floor(Q × h) of the suppressed strategy; it must be 1 for absolute.
func NewPolicy(strategy Strategy, hardLimitFactor float64, limits ...Limit) (*Policy, error) {
	if strategy < Absolute || strategy > TokenBucket {
		return nil, fmt.Errorf("unknown strategy %d", strategy)
	}
	if len(limits) == 0 || len(limits) > MaxLimits {
		return nil, fmt.Errorf("a policy needs between 1 and %d limits, got %d", MaxLimits, len(limits))
	}
	if math.IsNaN(hardLimitFactor) || hardLimitFactor < 1 || hardLimitFactor > 1000 {
		return nil, fmt.Errorf("hard limit factor %v: must be between 1 and 1000", hardLimitFactor)
	}
	if strategy != Suppressed && hardLimitFactor != 1 {
		return nil, errors.New("hard limit factor applies to the suppressed strategy only")
	}
	if strategy.Meter() {
		return newMeterPolicy(strategy, limits)
	}
	p := &Policy{strategy: strategy, hardFactor: hardLimitFactor, size: headerSize}
	h := fnv.New32a()
	var b [8]byte
	h.Write([]byte{formatVersion, byte(strategy), byte(len(limits))})
	binary.LittleEndian.PutUint64(b[:], math.Float64bits(hardLimitFactor))
	h.Write(b[:])
	for i, l := range limits {
		if err := l.validate(); err != nil {
			return nil, fmt.Errorf("limit %d: %w", i, err)
		}
		c := compiled{Limit: l, hard: l.Quota, buckets: l.Buckets(), offset: p.size}
		if strategy == Suppressed {
			c.hard = int64(math.Floor(float64(l.Quota)*hardLimitFactor + quotaEpsilon))
			if c.hard > MaxQuota {
				return nil, fmt.Errorf("limit %d: hard quota %d is above %d", i, c.hard, MaxQuota)
			}
		}
		p.size += limitHeaderSize + c.buckets*p.recordSize()
		p.limits = append(p.limits, c)
		for _, v := range []int64{l.Quota, l.WindowMs, l.GroupMs, int64(math.Float64bits(l.Rate))} {
			binary.LittleEndian.PutUint64(b[:], uint64(v))
			h.Write(b[:])
		}
	}
	p.fingerprint = h.Sum32()
	return p, nil
}

// Strategy returns the policy's strategy.
func (p *Policy) Strategy() Strategy { return p.strategy }

// Limits returns a copy of the policy's limits.
func (p *Policy) Limits() []Limit {
	out := make([]Limit, len(p.limits))
	for i, c := range p.limits {
		out[i] = c.Limit
	}
	return out
}

// HardLimitFactor returns h (1 but for suppressed).
func (p *Policy) HardLimitFactor() float64 { return p.hardFactor }

// HardQuota returns H of limit i: floor(Q × h) for suppressed, else Q (a meter's burst).
func (p *Policy) HardQuota(i int) int64 { return p.limits[i].hard }

// StateSize is the exact size in bytes of the policy's state.
func (p *Policy) StateSize() int { return p.size }

// Fingerprint identifies the policy's limits; it is stored in the state so that a state written
// for other limits is reset rather than misread.
func (p *Policy) Fingerprint() uint32 { return p.fingerprint }

// LongestWindowMs is the longest window of the policy: a key untouched for that long has no
// live state left. For a meter it is the time an empty meter takes to refill completely.
func (p *Policy) LongestWindowMs() int64 {
	var w int64
	for _, c := range p.limits {
		w = max(w, c.WindowMs, (c.toleranceUs+999)/1000)
	}
	return w
}

// ShortestWindowMs returns the shortest window of the policy's limits (for a meter, the window
// its results report: see Result.WindowMs).
func (p *Policy) ShortestWindowMs() int64 {
	w := p.limits[0].WindowMs
	for _, c := range p.limits[1:] {
		w = min(w, c.WindowMs)
	}
	return w
}

func (p *Policy) recordSize() int {
	if p.strategy == Suppressed {
		return 16
	}
	return 12
}
