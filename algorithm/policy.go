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
	blockMs     int64
	limits      []compiled
	size        int // the state's size, its block end included
	fingerprint uint32
	// windowMs is the longest window (for a meter, of its windows and refill times): a state
	// that ends further ahead is not trusted, and rebases keep that much.
	windowMs int64
}

type compiled struct {
	Limit
	hard    int64 // H = floor(Q × h) for suppressed, Q for absolute
	buckets int
	offset  int // byte offset of the limit's record in the state
	// Meters: the emission interval T and the burst tolerance burst × T, in microseconds.
	intervalUs, toleranceUs int64
}

// PolicyOptions are a policy's settings besides its limits.
type PolicyOptions struct {
	Strategy Strategy
	// HardLimitFactor (h >= 1) sets the hard quota H = floor(Q × h) of the suppressed strategy;
	// it must be 1 (or 0, read as 1) for the others.
	HardLimitFactor float64
	// BlockMs, when > 0, blocks a key that a decision rejects for lack of room (quota exhausted,
	// hard limit) for that long: every request is rejected until the block ends, whatever the
	// key's usage (SPEC.md, "Blocks"). At most MaxBlockMs.
	BlockMs int64
}

// MaxBlockMs is the longest block: 31 days, as the longest window.
const MaxBlockMs = MaxRefillMs

// NewPolicy compiles limits decided together with strategy: NewPolicyOpts without a block.
func NewPolicy(strategy Strategy, hardLimitFactor float64, limits ...Limit) (*Policy, error) {
	return NewPolicyOpts(PolicyOptions{Strategy: strategy, HardLimitFactor: hardLimitFactor}, limits...)
}

// NewPolicyOpts compiles limits decided together with the options o.
func NewPolicyOpts(o PolicyOptions, limits ...Limit) (*Policy, error) {
	strategy, hardLimitFactor := o.Strategy, o.HardLimitFactor
	if hardLimitFactor == 0 {
		hardLimitFactor = 1
	}
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
	if o.BlockMs < 0 || o.BlockMs > MaxBlockMs {
		return nil, fmt.Errorf("block of %d ms: must be between 0 and %d ms (31 days)", o.BlockMs, int64(MaxBlockMs))
	}
	var (
		p   *Policy
		err error
	)
	if strategy.Meter() {
		p, err = newMeterPolicy(strategy, limits)
	} else {
		p, err = newWindowPolicy(strategy, hardLimitFactor, limits)
	}
	if err != nil {
		return nil, err
	}
	if o.BlockMs > 0 {
		// The block's end is the state's last 8 bytes; a policy without a block keeps the
		// format it had before blocks existed, and its fingerprint.
		p.blockMs = o.BlockMs
		p.size += blockSize
		h := fnv.New32a()
		var b [12]byte
		le.PutUint32(b[:], p.fingerprint)
		le.PutUint64(b[4:], uint64(o.BlockMs))
		h.Write(b[:])
		p.fingerprint = h.Sum32()
	}
	return p, nil
}

func newWindowPolicy(strategy Strategy, hardLimitFactor float64, limits []Limit) (*Policy, error) {
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
		p.windowMs = max(p.windowMs, l.WindowMs)
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

// LongestWindowMs is the longest window of the policy, or its block when that is longer: a key
// untouched for that long has no live state left (the state's time to live). For a meter it is
// the time an empty meter takes to refill completely.
func (p *Policy) LongestWindowMs() int64 { return max(p.windowMs, p.blockMs) }

// BlockMs returns the policy's block (0: none).
func (p *Policy) BlockMs() int64 { return p.blockMs }

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
