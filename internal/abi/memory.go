package abi

import "unsafe"

// pinned holds the buffers the host allocated through proxy_on_memory_allocate during the current
// host call. The host only writes their addresses into linear memory, which the Go garbage
// collector does not scan, so they must stay referenced here until the caller has taken them.
var pinned [][]byte

// Allocate returns a new buffer of size bytes for the host and keeps it reachable until Take.
func Allocate(size uint32) uint32 {
	buf := make([]byte, max(size, 1))
	pinned = append(pinned, buf)
	return uint32(uintptr(unsafe.Pointer(&buf[0])))
}

// Take returns the buffer the host allocated at address ptr, cut to size bytes, and releases every
// pinned buffer: each host call returns at most one buffer, and the caller takes it before the
// next call. A pointer that is not one of ours (0 for an empty value) gives nil.
func Take(ptr, size uint32) []byte {
	var out []byte
	for _, buf := range pinned {
		if uint32(uintptr(unsafe.Pointer(&buf[0]))) == ptr && int(size) <= len(buf) {
			out = buf[:size:size]
			break
		}
	}
	clear(pinned)
	pinned = pinned[:0]
	return out
}
