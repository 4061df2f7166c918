package algorithm

import (
	"math"
	"testing"
)

// Every configuration bound accepts its limit value and refuses the next one.
func TestConfigurationBounds(t *testing.T) {
	limit := func(l Limit, err error) func() error { return func() error { return err } }
	policy := func(o PolicyOptions, limits ...Limit) func() error {
		return func() error { _, err := NewPolicyOpts(o, limits...); return err }
	}
	one := Limit{Quota: 1, WindowMs: 1000, GroupMs: 100, Rate: 1}
	many := func(n int) []Limit {
		ls := make([]Limit, n)
		for i := range ls {
			ls[i] = one
		}
		return ls
	}
	for _, tc := range []struct {
		name string
		make func() error
		ok   bool
	}{
		{name: "quota MaxQuota", make: limit(NewLimit(MaxQuota, 1, 0)), ok: true},
		{name: "quota above MaxQuota", make: limit(NewLimit(MaxQuota+1, 1, 0))},
		{name: "per period 1", make: limit(PerPeriod(1, 1, 0)), ok: true},
		{name: "per period 0", make: limit(PerPeriod(0, 1, 0))},
		{name: "per period MaxQuota", make: limit(PerPeriod(MaxQuota, 1, 0)), ok: true},
		{name: "per period above MaxQuota", make: limit(PerPeriod(MaxQuota+1, 1, 0))},
		{name: "window of MaxInt32/1000 s: milliseconds in 32 bits", make: limit(PerPeriod(1, math.MaxInt32/1000, 0)), ok: true},
		{name: "window too long for milliseconds in 32 bits", make: limit(PerPeriod(1, math.MaxInt32/1000+1, 0))},
		{name: "bucket rate 0", make: limit(NewTokenBucket(0, 1))},
		{name: "bucket burst 1", make: limit(NewTokenBucket(1, 1)), ok: true},
		{name: "bucket burst 0", make: limit(NewTokenBucket(1, 0))},
		{name: "bucket burst above MaxQuota", make: limit(NewTokenBucket(1e9, MaxQuota+1))},
		{name: "bucket refilling in exactly MaxRefillMs", make: limit(NewTokenBucket(1, MaxRefillMs/1000)), ok: true},
		{name: "bucket refilling in a second more", make: limit(NewTokenBucket(1, MaxRefillMs/1000+1))},
		{name: "bucket refilling in a fraction of a second more", make: limit(NewTokenBucket(2, 2*MaxRefillMs/1000+1))},
		{name: "MaxLimits limits", make: policy(PolicyOptions{Strategy: Absolute}, many(MaxLimits)...), ok: true},
		{name: "one limit more", make: policy(PolicyOptions{Strategy: Absolute}, many(MaxLimits+1)...)},
		{name: "hard limit factor 1000", make: policy(PolicyOptions{Strategy: Suppressed, HardLimitFactor: 1000}, one), ok: true},
		{name: "hard limit factor above 1000", make: policy(PolicyOptions{Strategy: Suppressed, HardLimitFactor: 1000.5}, one)},
		{name: "hard limit factor below 1", make: policy(PolicyOptions{Strategy: Suppressed, HardLimitFactor: 0.5}, one)},
		{name: "block MaxBlockMs", make: policy(PolicyOptions{Strategy: Absolute, BlockMs: MaxBlockMs}, one), ok: true},
		{name: "block above MaxBlockMs", make: policy(PolicyOptions{Strategy: Absolute, BlockMs: MaxBlockMs + 1}, one)},
		{name: "negative block", make: policy(PolicyOptions{Strategy: Absolute, BlockMs: -1}, one)},
		{name: "hard quota MaxQuota", make: policy(PolicyOptions{Strategy: Suppressed, HardLimitFactor: 1}, Limit{Quota: MaxQuota, WindowMs: 1000, GroupMs: 100, Rate: MaxQuota}), ok: true},
		{name: "hard quota above MaxQuota", make: policy(PolicyOptions{Strategy: Suppressed, HardLimitFactor: 2}, Limit{Quota: MaxQuota/2 + 1, WindowMs: 1000, GroupMs: 100, Rate: MaxQuota/2 + 1})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.make(); (err == nil) != tc.ok {
				t.Fatalf("error %v, want accepted %v", err, tc.ok)
			}
		})
	}
}
