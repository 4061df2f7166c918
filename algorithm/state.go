package algorithm

import "encoding/binary"

// The state layout (little-endian; FORMAT.md has the table):
//
//	header, 24 bytes: version u8, strategy u8, limit count u8, 0 u8, fingerprint u32,
//	                  base i64 (ms; bucket starts are offsets from it), last i64 (latest time seen, ms)
//	per limit:        first u16 (ring index of the oldest live bucket), n u16 (live buckets),
//	                  sumA u32 (admitted/accepted), sumD u32 (denied; attempted = sumA + sumD), 0 u32,
//	                  then Buckets() records: start u32 and end u32 (ms after base: first and
//	                  latest request counted in the bucket), a u32, [d u32 for suppressed]
//	with a block:     the block's end i64 (ms; 0 or past: none), the last 8 bytes
const (
	formatVersion   = 1
	headerSize      = 24
	limitHeaderSize = 16
	blockSize       = 8
	// rebaseAfterMs keeps bucket offsets far from the u32 limit: once the latest time is that far
	// past base, base moves up.
	rebaseAfterMs = 1 << 30
)

var le = binary.LittleEndian

// state is a view over a policy's state bytes.
type state struct {
	p *Policy
	b []byte
}

// load returns a valid state for p in dst (reusing its capacity): a copy of old when old is a
// valid state of p, else a fresh state at now. reset tells whether old was unusable (absent,
// corrupt, another version or other limits).
func (p *Policy) load(dst, old []byte, now int64) (st state, reset bool) {
	if cap(dst) >= p.size {
		dst = dst[:p.size]
	} else {
		dst = make([]byte, p.size)
	}
	st = state{p: p, b: dst}
	// A state from more than a window in the future (a clock stepped back that far, or a corrupt
	// time) is started afresh rather than trusted: it would otherwise lock the key until the
	// clock caught up.
	if p.usable(old, now) {
		copy(dst, old)
		return st, false
	}
	clear(dst)
	dst[0] = formatVersion
	dst[1] = byte(p.strategy)
	dst[2] = byte(len(p.limits))
	le.PutUint32(dst[4:], p.fingerprint)
	le.PutUint64(dst[8:], uint64(now))
	le.PutUint64(dst[16:], uint64(now))
	return st, len(old) != 0
}

// usable tells whether old is a valid state of p not written more than a window ahead of now.
func (p *Policy) usable(old []byte, now int64) bool {
	return p.valid(old) && int64(le.Uint64(old[16:]))-now <= p.windowMs
}

// valid checks everything a decision relies on to stay in bounds; counters that do not add up are
// healed by the decision itself (sums never go below zero and restart when a ring empties).
func (p *Policy) valid(b []byte) bool {
	if len(b) != p.size || b[0] != formatVersion || b[1] != byte(p.strategy) ||
		b[2] != byte(len(p.limits)) || le.Uint32(b[4:]) != p.fingerprint {
		return false
	}
	base, last := int64(le.Uint64(b[8:])), int64(le.Uint64(b[16:]))
	if last < base || last-base > 2*rebaseAfterMs {
		return false
	}
	for _, c := range p.limits {
		first, n := int(le.Uint16(b[c.offset:])), int(le.Uint16(b[c.offset+2:]))
		if first >= c.buckets || n > c.buckets {
			return false
		}
	}
	return true
}

func (s state) base() int64     { return int64(le.Uint64(s.b[8:])) }
func (s state) last() int64     { return int64(le.Uint64(s.b[16:])) }
func (s state) setLast(t int64) { le.PutUint64(s.b[16:], uint64(t)) }

// ring is one limit's buckets inside a state.
type ring struct {
	c   *compiled
	b   []byte // the limit's record: header then buckets
	rec int
}

func (s state) ring(i int) ring {
	c := &s.p.limits[i]
	return ring{c: c, b: s.b[c.offset : c.offset+limitHeaderSize+c.buckets*s.p.recordSize()], rec: s.p.recordSize()}
}

func (r ring) first() int      { return int(le.Uint16(r.b[0:])) }
func (r ring) n() int          { return int(le.Uint16(r.b[2:])) }
func (r ring) sumA() int64     { return int64(le.Uint32(r.b[4:])) }
func (r ring) sumD() int64     { return int64(le.Uint32(r.b[8:])) }
func (r ring) setFirst(v int)  { le.PutUint16(r.b[0:], uint16(v)) }
func (r ring) setN(v int)      { le.PutUint16(r.b[2:], uint16(v)) }
func (r ring) setSumA(v int64) { le.PutUint32(r.b[4:], uint32(clampU32(v))) }
func (r ring) setSumD(v int64) { le.PutUint32(r.b[8:], uint32(clampU32(v))) }
func (r ring) at(k int) []byte {
	i := (r.first() + k) % r.c.buckets
	return r.b[limitHeaderSize+i*r.rec:]
}
func (r ring) start(k int) int64 { return int64(le.Uint32(r.at(k))) }
func (r ring) end(k int) int64   { return int64(le.Uint32(r.at(k)[4:])) }
func (r ring) a(k int) int64     { return int64(le.Uint32(r.at(k)[8:])) }
func (r ring) d(k int) int64 {
	if r.rec < 16 {
		return 0
	}
	return int64(le.Uint32(r.at(k)[12:]))
}

func clampU32(v int64) int64 { return min(max(v, 0), 1<<32-1) }
