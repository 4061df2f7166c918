package abi

import "unsafe"

// The host returns data to the guest (proxy_get_* calls) by asking the guest for a buffer with
// proxy_on_memory_allocate, writing into it and passing its address back. Each host call returns
// at most one buffer, and the caller takes it (Take) before its next host call, so one reusable
// arena serves them all: the host's buffers are carved from it during a host call, and Take makes
// it free again for the next one. A buffer Take returns therefore stays valid only until the next
// host call that returns data; callers copy what they keep. This spares a heap allocation (and its
// share of garbage collection) per host call.
//
// The arena is a global, so the garbage collector, which does not scan linear memory for the
// addresses the host holds, keeps it alive; Go's collector does not move objects.
var (
	arena []byte
	used  int // bytes of the arena handed out since the last Take
)

const (
	arenaMin = 4 << 10
	// arenaMax bounds the arena: larger buffers (e.g. a big configuration) are allocated apart.
	arenaMax = 1 << 20
)

// pinned holds the buffers allocated apart from the arena during the current host call, to keep
// them reachable until Take.
var pinned [][]byte

// Allocate returns a buffer of size bytes for the host, valid until Take.
func Allocate(size uint32) uint32 {
	n := int(max(size, 1)+7) &^ 7
	if used+n > len(arena) && used == 0 && n <= arenaMax {
		arena = make([]byte, max(arenaMin, min(arenaMax, 2*len(arena)), n))
	}
	if used+n <= len(arena) {
		p := uint32(uintptr(unsafe.Pointer(&arena[used])))
		used += n
		return p
	}
	buf := make([]byte, n)
	pinned = append(pinned, buf)
	return uint32(uintptr(unsafe.Pointer(&buf[0])))
}

// Take returns the buffer the host allocated at address ptr, cut to size bytes, and releases every
// buffer of the host call: the result is valid until the next host call that returns data. A
// pointer that is not one of ours (0 for an empty value) gives nil.
func Take(ptr, size uint32) []byte {
	var out []byte
	if used > 0 {
		base := uint32(uintptr(unsafe.Pointer(&arena[0])))
		if off := int(ptr - base); off < used && off+int(size) <= used { // ptr < base wraps past used
			out = arena[off : off+int(size) : off+int(size)]
		}
	}
	for _, buf := range pinned {
		if out == nil && uint32(uintptr(unsafe.Pointer(&buf[0]))) == ptr && int(size) <= len(buf) {
			out = buf[:size:size]
		}
	}
	used = 0
	clear(pinned)
	pinned = pinned[:0]
	return out
}
