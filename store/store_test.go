package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"testing"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

func newStore(t testing.TB, sd SharedData, opts Options) *Store {
	t.Helper()
	if opts.Prefix == "" {
		opts.Prefix = "fg"
	}
	if opts.PayloadSize == 0 {
		opts.PayloadSize = 8
	}
	s, err := New(sd, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// incr adds one to key's 8-byte counter and returns the new value.
func incr(t testing.TB, s *Store, key string, now int64) (uint64, Info) {
	t.Helper()
	var n uint64
	info, err := s.Update([]byte(key), now, 1000, func(cur []byte) ([]byte, bool) {
		n = 1
		if cur != nil {
			n = binary.LittleEndian.Uint64(cur) + 1
		}
		return binary.LittleEndian.AppendUint64(nil, n), true
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, info
}

func TestMemorySemantics(t *testing.T) {
	m := NewMemory()
	if _, _, err := m.Get("k"); !errors.Is(err, types.ErrorStatusNotFound) {
		t.Fatalf("get of an absent key: %v", err)
	}
	if err := m.Set("k", []byte("a"), 77); err != nil {
		t.Fatalf("a missing key is inserted whatever the CAS: %v", err)
	}
	_, cas, _ := m.Get("k")
	if err := m.Set("k", []byte("b"), cas+1); !errors.Is(err, types.ErrorStatusCasMismatch) {
		t.Fatalf("stale CAS: %v", err)
	}
	if err := m.Set("k", []byte("b"), 0); err != nil {
		t.Fatalf("CAS 0 overwrites: %v", err)
	}
}

func TestUpdateIsExactUnderConcurrency(t *testing.T) {
	m := NewMemory()
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		s := newStore(t, m, Options{Slots: 4}) // one Store per worker VM, one shared memory
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := s.Update([]byte("hot"), 0, 1000, func(cur []byte) ([]byte, bool) {
					var n uint64
					if cur != nil {
						n = binary.LittleEndian.Uint64(cur)
					}
					return binary.LittleEndian.AppendUint64(nil, n+1), true
				}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n, _ := incr(t, newStore(t, m, Options{Slots: 4}), "hot", 0); n != workers*each+1 {
		t.Fatalf("counter %d, want %d: updates were lost", n-1, workers*each)
	}
}

func TestInsertRaceDoesNotLoseUpdates(t *testing.T) {
	// Two workers both find the slot absent; the second insert must not overwrite the first.
	m := NewMemory()
	a, b := newStore(t, m, Options{Slots: 1}), newStore(t, m, Options{Slots: 1})
	var once sync.Once
	_, err := a.Update([]byte("x"), 0, 1000, func(cur []byte) ([]byte, bool) {
		once.Do(func() { incr(t, b, "y", 0) }) // b inserts the slot between a's Get and Set
		return binary.LittleEndian.AppendUint64(nil, 1), true
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := incr(t, b, "y", 0); n != 2 {
		t.Fatalf("key y = %d after two increments: a's insert overwrote b's", n)
	}
}

func TestCollisionsAndEviction(t *testing.T) {
	m := NewMemory()
	s := newStore(t, m, Options{Slots: 1, Ways: 4})
	for i := 0; i < 4; i++ {
		for j := 0; j <= i; j++ {
			incr(t, s, "k"+strconv.Itoa(i), int64(i))
		}
	}
	for i := 0; i < 4; i++ {
		if n, info := incr(t, s, "k"+strconv.Itoa(i), 10); n != uint64(i+2) || info.Evicted {
			t.Fatalf("k%d = %d (%+v): fingerprints must keep keys of one slot apart", i, n, info)
		}
	}
	// A fifth live key evicts the way written longest ago (k0, at 10; the others at 10 too but
	// later in order: ties go to the first).
	if n, info := incr(t, s, "k4", 20); n != 1 || !info.Evicted {
		t.Fatalf("k4 = %d (%+v), want a fresh counter and an eviction", n, info)
	}
	if n, _ := incr(t, s, "k0", 21); n != 1 {
		t.Fatalf("k0 = %d, want a fresh counter after its eviction", n)
	}
}

func TestStaleWaysAreReusedWithoutEviction(t *testing.T) {
	s := newStore(t, NewMemory(), Options{Slots: 1, Ways: 2})
	incr(t, s, "a", 0)
	incr(t, s, "b", 0)
	if _, info := incr(t, s, "c", 5000); info.Evicted {
		t.Fatal("taking a stale way is not an eviction")
	}
	if n, _ := incr(t, s, "a", 5000); n != 1 {
		t.Fatalf("an entry untouched for longer than the TTL must start afresh, got %d", n)
	}
}

func TestCorruptSlotStartsAfresh(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value []byte
	}{
		{name: "garbage", value: []byte("not a slot")},
		{name: "other payload size", value: append([]byte{1, 4, 0, 0, 99, 0, 0, 0}, make([]byte, 4*(16+99))...)},
		{name: "empty", value: []byte{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemory()
			s := newStore(t, m, Options{Slots: 1})
			_ = m.Set(s.slotKey(0), tc.value, 0)
			n, info := incr(t, s, "k", 0)
			if n != 1 || !info.Corrupt {
				t.Fatalf("n=%d info=%+v", n, info)
			}
		})
	}
}

func TestNonPositiveTTLIsRefused(t *testing.T) {
	s := newStore(t, NewMemory(), Options{Slots: 1})
	if _, err := s.Update([]byte("k"), 0, 0, func([]byte) ([]byte, bool) { return make([]byte, 8), true }); err == nil {
		t.Fatal("a TTL of 0 was accepted")
	}
}

func TestContentionIsReported(t *testing.T) {
	m := NewMemory()
	s := newStore(t, m, Options{Slots: 1, MaxRetries: 3})
	other := newStore(t, m, Options{Slots: 1})
	_, err := s.Update([]byte("k"), 0, 1000, func(cur []byte) ([]byte, bool) {
		incr(t, other, "z", 0) // someone else writes the slot every time
		return make([]byte, 8), true
	})
	if !errors.Is(err, ErrContention) {
		t.Fatalf("err = %v, want ErrContention", err)
	}
}

func TestMillionKeysStayWithinTheBound(t *testing.T) {
	m := NewMemory()
	s := newStore(t, m, Options{Slots: 4096, PayloadSize: 32})
	payload := make([]byte, 32)
	evictions := 0
	for i := 0; i < 1_000_000; i++ {
		info, err := s.Update([]byte("client-"+strconv.Itoa(i)), int64(i), 60_000, func([]byte) ([]byte, bool) { return payload, true })
		if err != nil {
			t.Fatal(err)
		}
		if info.Evicted {
			evictions++
		}
	}
	if m.Len() > 4096 || m.TotalBytes() > s.MaxBytes() {
		t.Fatalf("%d entries, %d bytes; bound 4096 entries, %d bytes", m.Len(), m.TotalBytes(), s.MaxBytes())
	}
	t.Logf("1e6 distinct keys: %d shared-data entries, %d bytes (bound %d), %d evictions", m.Len(), m.TotalBytes(), s.MaxBytes(), evictions)
}

func TestInvalidOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{name: "no prefix", opts: Options{PayloadSize: 8}},
		{name: "no payload", opts: Options{Prefix: "p"}},
		{name: "too many ways", opts: Options{Prefix: "p", PayloadSize: 8, Ways: 17}},
		{name: "too many slots", opts: Options{Prefix: "p", PayloadSize: 8, Slots: 1<<22 + 1}},
		{name: "negative ways", opts: Options{Prefix: "p", PayloadSize: 8, Ways: -1}},
		{name: "payload too large", opts: Options{Prefix: "p", PayloadSize: 1<<20 + 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(NewMemory(), tc.opts); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	// The bounds themselves are accepted.
	for _, opts := range []Options{
		{Prefix: "p", PayloadSize: 1, Ways: 1, Slots: 1},
		{Prefix: "p", PayloadSize: 1 << 20, Ways: 16, Slots: 1 << 22},
	} {
		if _, err := New(NewMemory(), opts); err != nil {
			t.Fatalf("%+v refused: %v", opts, err)
		}
	}
}

func FuzzSlotDecode(f *testing.F) {
	f.Add([]byte{1, 4, 0, 0, 8, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, value []byte) {
		m := NewMemory()
		s := newStore(t, m, Options{Slots: 1, Ways: 4})
		_ = m.Set(s.slotKey(0), value, 0)
		if n, _ := incr(t, s, "k", 0); n < 1 {
			t.Fatal("no count")
		}
		if v, _, _ := m.Get(s.slotKey(0)); !s.valid(v) {
			t.Fatal("Update wrote an invalid slot")
		}
	})
}

func BenchmarkUpdate(b *testing.B) {
	m := NewMemory()
	s := newStore(b, m, Options{Slots: 65536, PayloadSize: 160})
	next := make([]byte, 160)
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("10.0.%d.%d", i/256, i%256))
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := s.Update(keys[i%len(keys)], int64(i), 1000, func([]byte) ([]byte, bool) { return next, true }); err != nil {
			b.Fatal(err)
		}
	}
}

// TestUpdateSlotAndUpdateHash updates entries by slot, as the hybrid sync does, and by hash.
func TestUpdateSlotAndUpdateHash(t *testing.T) {
	s := newStore(t, NewMemory(), Options{Slots: 1, Ways: 4})
	for i, key := range []string{"a", "b", "c"} {
		incr(t, s, key, int64(i*500)) // c at 1000: a is stale by then (ttl 1000)
	}
	seen := 0
	if err := s.UpdateSlot(s.SlotOf(Hash([]byte("b"))), 1000, 1000, func(live [][]byte) bool {
		seen = len(live)
		for _, p := range live {
			binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)+100)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if seen != 2 {
		t.Fatalf("%d live entries, want b and c", seen)
	}
	if _, err := s.UpdateHash(Hash([]byte("b")), 1000, 1000, func(cur []byte) ([]byte, bool) {
		return binary.LittleEndian.AppendUint64(nil, binary.LittleEndian.Uint64(cur)+10), true
	}); err != nil {
		t.Fatal(err)
	}
	if n, _ := incr(t, s, "b", 1000); n != 112 {
		t.Fatalf("b is %d after UpdateSlot and UpdateHash, want 112", n)
	}
	if n, _ := incr(t, s, "a", 1000); n != 1 {
		t.Fatalf("stale a is %d, want a fresh 1", n)
	}
	empty := newStore(t, NewMemory(), Options{Slots: 4})
	if err := empty.UpdateSlot(3, 0, 1000, func([][]byte) bool { t.Fatal("an absent slot has no entries"); return false }); err != nil {
		t.Fatal(err)
	}
}

// interleaved is a SharedData whose first Set of a chosen key is preceded by another worker's
// write of that key, between the caller's Get and its Set: the compare-and-swap must catch it.
type interleaved struct {
	SharedData
	key    string
	before func()
	done   bool
}

func (s *interleaved) Set(key string, value []byte, cas uint32) error {
	if key == s.key && !s.done {
		s.done = true
		s.before()
	}
	return s.SharedData.Set(key, value, cas)
}

// UpdateSlot races a worker that writes the same slot between its read and its write: the
// worker's update and UpdateSlot's change must both survive (a lost update here drops admitted
// units the hybrid leader should report to Redis).
func TestUpdateSlotLosesNoConcurrentUpdate(t *testing.T) {
	mem := NewMemory()
	other := newStore(t, mem, Options{Slots: 1, Ways: 4})
	incr(t, other, "a", 0)
	incr(t, other, "b", 0)
	race := &interleaved{SharedData: mem}
	s := newStore(t, race, Options{Slots: 1, Ways: 4})
	race.key = s.slotKey(0)
	race.before = func() { incr(t, other, "a", 0) } // another worker admits on a meanwhile
	runs := 0
	if err := s.UpdateSlot(0, 0, 1000, func(live [][]byte) bool {
		runs++
		for _, p := range live {
			binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)+100)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if runs != 2 {
		t.Fatalf("fn ran %d times, want 2: once, then again on the value the CAS conflict revealed", runs)
	}
	if n, _ := incr(t, other, "a", 0); n != 103 {
		t.Fatalf("a is %d, want 103: 2 increments before and during UpdateSlot, +100, then this one", n)
	}
	if n, _ := incr(t, other, "b", 0); n != 102 {
		t.Fatalf("b is %d, want 102", n)
	}
}

// conflicting is a SharedData whose every compare-and-swap Set fails, as if another worker wrote
// the slot between each Get and Set; it counts the Sets tried.
type conflicting struct {
	SharedData
	sets int
}

func (c *conflicting) Set(key string, value []byte, cas uint32) error {
	c.sets++
	return types.ErrorStatusCasMismatch
}

// Under endless contention Update and UpdateSlot try exactly 1 + MaxRetries times, report every
// conflict, and give up with ErrContention.
func TestRetriesAreBoundedAndCounted(t *testing.T) {
	for _, retries := range []int{1, 3, 7} {
		t.Run(strconv.Itoa(retries), func(t *testing.T) {
			mem := NewMemory()
			incr(t, newStore(t, mem, Options{Slots: 1}), "k", 0) // the slot exists: UpdateSlot reads it
			sd := &conflicting{SharedData: mem}
			s := newStore(t, sd, Options{Slots: 1, MaxRetries: retries})
			info, err := s.Update([]byte("k"), 0, 1000, func([]byte) ([]byte, bool) { return make([]byte, 8), true })
			if !errors.Is(err, ErrContention) || info.Retries != retries+1 || sd.sets != retries+1 {
				t.Fatalf("Update: err %v, %d retries, %d sets; want ErrContention after %d of each", err, info.Retries, sd.sets, retries+1)
			}
			sd.sets = 0
			runs := 0
			err = s.UpdateSlot(0, 0, 1000, func([][]byte) bool { runs++; return true })
			if !errors.Is(err, ErrContention) || runs != retries+1 || sd.sets != retries+1 {
				t.Fatalf("UpdateSlot: err %v, %d runs, %d sets; want ErrContention after %d of each", err, runs, sd.sets, retries+1)
			}
		})
	}
}

// A way written exactly ttlMs ago is expired: reusing it is no eviction, while one written a
// millisecond later is live and taking it is one. Times are realistic (far from 0).
func TestEvictionBoundary(t *testing.T) {
	const now, ttl = int64(1_700_000_000_000), int64(60_000)
	for _, tc := range []struct {
		name    string
		age     int64 // of both ways when a third key arrives
		evicted bool
	}{
		{name: "expired at ttl", age: ttl, evicted: false},
		{name: "live just under ttl", age: ttl - 1, evicted: true},
		{name: "fresh", age: 0, evicted: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, NewMemory(), Options{Slots: 1, Ways: 2})
			for _, k := range []string{"a", "b"} {
				if _, err := s.Update([]byte(k), now-tc.age, ttl, func([]byte) ([]byte, bool) { return make([]byte, 8), true }); err != nil {
					t.Fatal(err)
				}
			}
			info, err := s.Update([]byte("c"), now, ttl, func([]byte) ([]byte, bool) { return make([]byte, 8), true })
			if err != nil {
				t.Fatal(err)
			}
			if info.Evicted != tc.evicted {
				t.Fatalf("evicted = %v, want %v", info.Evicted, tc.evicted)
			}
		})
	}
}

// Slot keys are the prefix, a colon and the slot in base 36 (every version and every VM must name
// them alike), and MaxBytes bounds exactly what the longest keys with full slots take.
func TestSlotKeysAndMaxBytes(t *testing.T) {
	for _, slots := range []uint32{1, 36, 37, 1296, 1297} {
		t.Run(strconv.Itoa(int(slots)), func(t *testing.T) {
			m := NewMemory()
			s := newStore(t, m, Options{Prefix: "pfx", Slots: slots, PayloadSize: 8})
			want := "pfx:" + strconv.FormatUint(uint64(slots-1), 36)
			if got := s.slotKey(slots - 1); got != want {
				t.Fatalf("slot key %q, want %q", got, want)
			}
			// Fill every slot: the bytes held reach MaxBytes exactly when every key is as long
			// as the last one's, never more.
			for slot := uint32(0); slot < slots; slot++ {
				if err := m.Set(s.slotKey(slot), make([]byte, s.SlotSize()), 0); err != nil {
					t.Fatal(err)
				}
			}
			perKey := len(want) + s.SlotSize()
			if s.MaxBytes() != int(slots)*perKey {
				t.Fatalf("MaxBytes %d, want %d (%d slots of %d bytes)", s.MaxBytes(), int(slots)*perKey, slots, perKey)
			}
			if m.TotalBytes() > s.MaxBytes() {
				t.Fatalf("%d bytes held, above MaxBytes %d", m.TotalBytes(), s.MaxBytes())
			}
		})
	}
}

// Memory never hands out CAS 0 (it means "no CAS"), also when its counter wraps around.
func TestMemoryCASSkipsZero(t *testing.T) {
	m := NewMemory()
	m.cas = math.MaxUint32 - 1
	for i := 0; i < 3; i++ {
		if err := m.Set("k", []byte{byte(i)}, 0); err != nil {
			t.Fatal(err)
		}
		if _, cas, _ := m.Get("k"); cas == 0 {
			t.Fatalf("set %d got CAS 0", i)
		}
	}
}
