// Package store keeps per-key state in proxy-wasm shared data, bounded in memory however many
// distinct keys arrive.
//
// Shared data is process-wide (every worker VM of a proxy sees it) and can never be deleted, so
// one entry per key would leak with per-IP or per-token keys. Instead a key's hash picks one of a
// fixed number of slots; each slot is one shared-data entry holding a few ways (a set-associative
// cache). A way holds a 64-bit fingerprint of its key, the time it was last written, and the
// key's payload (the algorithm's state). Lookups match the fingerprint; a new key takes an empty
// or stale way (untouched for longer than the caller's TTL, so its state has expired anyway),
// else evicts the way written longest ago.
//
// The trade-off: an evicted key loses its counters and starts afresh, so under more live keys
// than slots × ways that key can be admitted more than its limit within one window; the
// alternative, letting colliding keys share a counter, would instead reject innocent clients.
// Evictions are counted so operators can size Slots: keep slots × ways above the number of keys
// that are live within the longest window.
//
// Updates are compare-and-swap loops: read the slot (one host call), decide, write it back with
// the CAS read (one host call); a conflict with another worker retries, up to MaxRetries.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// SharedData is the part of the proxy-wasm host the store needs, with Envoy's semantics: Get of
// an absent key fails with types.ErrorStatusNotFound; Set with cas 0 overwrites; a missing key is
// inserted whatever the CAS; a non-zero CAS that does not match fails with
// types.ErrorStatusCasMismatch.
type SharedData interface {
	Get(key string) (value []byte, cas uint32, err error)
	Set(key string, value []byte, cas uint32) error
}

// ErrContention is returned when an update lost the compare-and-swap race MaxRetries times.
var ErrContention = errors.New("store: too much contention on a slot")

// Options size a Store.
type Options struct {
	// Prefix starts every shared-data key (Istio gives every plugin of a proxy the same vm_id).
	Prefix string
	// Slots is the number of shared-data entries the store may create. Default 65536.
	Slots uint32
	// Ways is the number of keys one slot holds. Default 4.
	Ways int
	// PayloadSize is the fixed size of every key's payload.
	PayloadSize int
	// MaxRetries bounds the compare-and-swap loop. Default 32.
	MaxRetries int
}

// Store maps keys to fixed-size payloads in shared data. A Store is used by one VM (one goroutine
// at a time); several VMs share the data through the host.
type Store struct {
	sd   SharedData
	opts Options
	way  int // bytes per way
	size int // bytes per slot value
	key  []byte
}

const (
	version      = 1
	headerSize   = 8 // version u8, ways u8, 0 u16, payload size u32
	wayHeader    = 16
	insertCAS    = math.MaxUint32 // see Update
	defaultSlots = 65536
)

// New returns a Store over sd.
func New(sd SharedData, opts Options) (*Store, error) {
	if opts.Slots == 0 {
		opts.Slots = defaultSlots
	}
	if opts.Ways == 0 {
		opts.Ways = 4
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = 32
	}
	switch {
	case opts.Prefix == "":
		return nil, errors.New("store: a key prefix is required")
	case opts.Ways < 1 || opts.Ways > 16:
		return nil, fmt.Errorf("store: ways %d: must be between 1 and 16", opts.Ways)
	case opts.PayloadSize < 1 || opts.PayloadSize > 1<<20:
		return nil, fmt.Errorf("store: payload size %d: must be between 1 and 1 MiB", opts.PayloadSize)
	case opts.Slots > 1<<22:
		return nil, fmt.Errorf("store: slots %d: at most %d", opts.Slots, 1<<22)
	}
	s := &Store{sd: sd, opts: opts, way: wayHeader + opts.PayloadSize}
	s.size = headerSize + opts.Ways*s.way
	s.key = append(make([]byte, 0, len(opts.Prefix)+8), opts.Prefix...)
	s.key = append(s.key, ':')
	return s, nil
}

// SlotSize is the size in bytes of one slot's value.
func (s *Store) SlotSize() int { return s.size }

// MaxBytes is the most shared data the store can ever hold: Slots entries of key and value.
func (s *Store) MaxBytes() int {
	keyLen := len(s.opts.Prefix) + 1 + len(strconv.FormatUint(uint64(s.opts.Slots-1), 36))
	return int(s.opts.Slots) * (keyLen + s.size)
}

// Info tells what one update did, for metrics.
type Info struct {
	// Retries is the number of compare-and-swap conflicts the update went through.
	Retries int
	// Evicted is set when the key took the way of another key that was still live.
	Evicted bool
	// Corrupt is set when the slot's value could not be read and was started afresh.
	Corrupt bool
}

// Hash returns the 64-bit FNV-1a hash of key; every VM of every proxy computes the same.
func Hash(key []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range key {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// fingerprint mixes the hash (splitmix64 finalizer) so that keys sharing a slot still differ;
// 0 marks an empty way.
func fingerprint(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return max(h, 1)
}

// Update runs fn on key's current payload (nil when the key has no live entry) and, when fn asks
// for it, stores the payload fn returns, which must be PayloadSize bytes. fn may run several
// times (once per compare-and-swap conflict) and must be pure. nowMs and ttlMs decide staleness:
// an entry not written for ttlMs is expired and its way may be reused.
func (s *Store) Update(key []byte, nowMs, ttlMs int64, fn func(cur []byte) (next []byte, write bool)) (Info, error) {
	return s.UpdateHash(Hash(key), nowMs, ttlMs, fn)
}

// UpdateHash is Update for the key whose Hash is h, for callers that kept the hash and not the key.
func (s *Store) UpdateHash(h uint64, nowMs, ttlMs int64, fn func(cur []byte) (next []byte, write bool)) (Info, error) {
	var info Info
	if ttlMs <= 0 {
		// Every entry would be stale: the limiter would never see a count.
		return info, fmt.Errorf("store: ttl %d ms: must be > 0", ttlMs)
	}
	fp := fingerprint(h)
	skey := s.slotKey(s.SlotOf(h))
	for attempt := 0; attempt <= s.opts.MaxRetries; attempt++ {
		val, cas, err := s.sd.Get(skey)
		absent := errors.Is(err, types.ErrorStatusNotFound)
		if err != nil && !absent {
			return info, fmt.Errorf("store: get %s: %w", skey, err)
		}
		if !s.valid(val) {
			info.Corrupt = !absent // an existing value that does not decode, empty ones included
			val = s.empty(val)
		}
		w, cur := s.find(val, fp, nowMs, ttlMs)
		next, write := fn(cur)
		if !write {
			return info, nil
		}
		if len(next) != s.opts.PayloadSize {
			return info, fmt.Errorf("store: payload of %d bytes, want %d", len(next), s.opts.PayloadSize)
		}
		if w < 0 {
			w, info.Evicted = s.victim(val, nowMs, ttlMs)
		}
		way := val[headerSize+w*s.way : headerSize+(w+1)*s.way]
		binary.LittleEndian.PutUint64(way, fp)
		binary.LittleEndian.PutUint64(way[8:], uint64(nowMs))
		copy(way[wayHeader:], next)
		if absent {
			// A CAS of 0 would overwrite a slot another worker inserted since our Get; a non-zero
			// CAS inserts a missing key and fails on an existing one (whose CAS is all but never
			// this value), which is the insert-if-absent Envoy does not offer directly.
			cas = insertCAS
		}
		err = s.sd.Set(skey, val, cas)
		if err == nil {
			return info, nil
		}
		if !errors.Is(err, types.ErrorStatusCasMismatch) {
			return info, fmt.Errorf("store: set %s: %w", skey, err)
		}
		info.Retries++
	}
	return info, ErrContention
}

// SlotOf returns the slot of the key whose Hash is h, in [0, Slots).
func (s *Store) SlotOf(h uint64) uint32 { return uint32(h % uint64(s.opts.Slots)) }

// Slots returns the number of slots.
func (s *Store) Slots() uint32 { return s.opts.Slots }

// UpdateSlot runs fn on the payloads of every live entry of slot (not written for less than
// ttlMs), which fn may change in place, and stores the slot when fn asks for it, with
// compare-and-swap like Update; fn runs again on a conflict. The entries keep their write times,
// so an update here does not keep an entry alive.
func (s *Store) UpdateSlot(slot uint32, nowMs, ttlMs int64, fn func(live [][]byte) (write bool)) error {
	skey := s.slotKey(slot)
	var live [][]byte
	for attempt := 0; attempt <= s.opts.MaxRetries; attempt++ {
		val, cas, err := s.sd.Get(skey)
		if errors.Is(err, types.ErrorStatusNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("store: get %s: %w", skey, err)
		}
		if !s.valid(val) {
			return nil
		}
		live = live[:0]
		for w := 0; w < s.opts.Ways; w++ {
			way := val[headerSize+w*s.way : headerSize+(w+1)*s.way]
			if binary.LittleEndian.Uint64(way) != 0 && nowMs-int64(binary.LittleEndian.Uint64(way[8:])) < ttlMs {
				live = append(live, way[wayHeader:])
			}
		}
		if !fn(live) {
			return nil
		}
		err = s.sd.Set(skey, val, cas)
		if err == nil {
			return nil
		}
		if !errors.Is(err, types.ErrorStatusCasMismatch) {
			return fmt.Errorf("store: set %s: %w", skey, err)
		}
	}
	return ErrContention
}

func (s *Store) slotKey(slot uint32) string {
	b := strconv.AppendUint(s.key[:len(s.opts.Prefix)+1], uint64(slot), 36)
	return string(b)
}

func (s *Store) valid(val []byte) bool {
	return len(val) == s.size && val[0] == version && int(val[1]) == s.opts.Ways &&
		binary.LittleEndian.Uint32(val[4:]) == uint32(s.opts.PayloadSize)
}

// empty returns an empty slot value, reusing buf's storage when it can.
func (s *Store) empty(buf []byte) []byte {
	if cap(buf) >= s.size {
		buf = buf[:s.size]
		clear(buf)
	} else {
		buf = make([]byte, s.size)
	}
	buf[0] = version
	buf[1] = byte(s.opts.Ways)
	binary.LittleEndian.PutUint32(buf[4:], uint32(s.opts.PayloadSize))
	return buf
}

// find returns the way holding fp and its payload, or -1 and nil; an expired entry of the key is
// returned as its way with a nil payload (its state has lapsed).
func (s *Store) find(val []byte, fp uint64, nowMs, ttlMs int64) (int, []byte) {
	for w := 0; w < s.opts.Ways; w++ {
		way := val[headerSize+w*s.way : headerSize+(w+1)*s.way]
		if binary.LittleEndian.Uint64(way) != fp {
			continue
		}
		if nowMs-int64(binary.LittleEndian.Uint64(way[8:])) >= ttlMs {
			return w, nil
		}
		return w, way[wayHeader:]
	}
	return -1, nil
}

// victim picks the way a new key takes: an empty way, else a stale one, else the one written
// longest ago (an eviction).
func (s *Store) victim(val []byte, nowMs, ttlMs int64) (w int, evicted bool) {
	oldest, oldestAt := 0, int64(math.MaxInt64)
	for i := 0; i < s.opts.Ways; i++ {
		way := val[headerSize+i*s.way:]
		if binary.LittleEndian.Uint64(way) == 0 {
			return i, false
		}
		at := int64(binary.LittleEndian.Uint64(way[8:]))
		if at < oldestAt {
			oldest, oldestAt = i, at
		}
	}
	return oldest, nowMs-oldestAt < ttlMs
}
