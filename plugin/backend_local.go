package plugin

import (
	"fmt"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/config"
	"github.com/floodgate-proxy/floodgate/internal/host"
	"github.com/floodgate-proxy/floodgate/store"
)

// localBackend decides on the proxy's shared data: one bounded store per policy, exact for every
// worker of the proxy (compare-and-swap on every update). Every policy has one: the redis and
// hybrid backends fall back to it (failure mode local).
type localBackend struct {
	policy    *algorithm.Policy
	store     *store.Store
	ttlMs     int64
	scratch   []byte // state buffer for keys seen for the first time
	evictions host.Metric
}

func newLocalBackend(cfg *config.Config, ns string, p *algorithm.Policy, evictions host.Metric) (*localBackend, error) {
	size := p.StateSize()
	st, err := store.New(sharedData{}, store.Options{
		Prefix:      cfg.SharedData.Prefix + ":" + ns,
		Slots:       cfg.SharedData.Slots,
		Ways:        waysFor(size),
		PayloadSize: size,
	})
	if err != nil {
		return nil, fmt.Errorf("local store: %w", err)
	}
	return &localBackend{policy: p, store: st, ttlMs: p.LongestWindowMs(),
		scratch: make([]byte, 0, size), evictions: evictions}, nil
}

// slotTarget is the slot size the number of ways aims at: every decision copies a whole slot in
// and out of shared data, so large states (long windows in fine buckets) get fewer ways.
const slotTarget = 4096

// waysFor returns the ways per slot for a state of size bytes: 4, down to 1 for large states.
func waysFor(size int) int {
	return max(1, min(4, slotTarget/(size+16)))
}

func (b *localBackend) decide(c *call) (outcome, bool) {
	res, err := b.decideNow(c.key, c.now, c.cost, c.draw)
	return outcome{res: res, err: err, counted: err == nil && res.Allowed}, false
}

// decideNow decides on the key's shared state, in place in the slot buffer the host returned.
func (b *localBackend) decideNow(key []byte, now, cost int64, draw float64) (algorithm.Result, error) {
	var res algorithm.Result
	info, err := b.store.Update(key, now, b.ttlMs, func(cur []byte) ([]byte, bool) {
		dst := cur
		if dst == nil {
			dst = b.scratch[:0]
		}
		var next []byte
		next, res = b.policy.Decide(dst, cur, now, cost, draw)
		return next, res.Changed
	})
	if info.Evicted {
		_ = b.evictions.Add(1)
	}
	return res, err
}

// refund gives back cost units counted for key at atMs (see algorithm.Policy.Refund).
func (b *localBackend) refund(key []byte, now, atMs, cost int64) {
	_, _ = b.store.Update(key, now, b.ttlMs, func(cur []byte) ([]byte, bool) {
		if cur == nil {
			return nil, false
		}
		return b.policy.Refund(cur, cur, now, atMs, cost)
	})
}

// check answers what a decision would, counting nothing (algorithm.Policy.Check); with a block,
// a rejection for lack of room starts it (algorithm.Policy.Block).
func (b *localBackend) check(key []byte, now, cost int64) (algorithm.Result, error) {
	var res algorithm.Result
	_, err := b.store.Update(key, now, b.ttlMs, func(cur []byte) ([]byte, bool) {
		if b.policy.BlockMs() == 0 {
			res = b.policy.Check(cur, now, cost)
			return nil, false
		}
		dst := cur
		if dst == nil {
			dst = b.scratch[:0]
		}
		var next []byte
		next, res = b.policy.Block(dst, cur, now, cost)
		return next, res.Changed
	})
	return res, err
}

// record counts cost units whatever the quota (see algorithm.Policy.Record).
func (b *localBackend) record(key []byte, now, cost int64) error {
	info, err := b.store.Update(key, now, b.ttlMs, func(cur []byte) ([]byte, bool) {
		dst := cur
		if dst == nil {
			dst = b.scratch[:0]
		}
		next, _ := b.policy.Record(dst, cur, now, cost)
		return next, true
	})
	if info.Evicted {
		_ = b.evictions.Add(1)
	}
	return err
}

// reset clears the key's state, when it has one.
func (b *localBackend) reset(key []byte, now int64) error {
	_, err := b.store.Update(key, now, b.ttlMs, func(cur []byte) ([]byte, bool) {
		if cur == nil {
			return nil, false
		}
		return b.policy.Reset(cur, now), true
	})
	return err
}
