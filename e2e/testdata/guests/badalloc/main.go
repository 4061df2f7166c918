//go:build wasip1

// Command badalloc is a test guest whose allocator calls an import Envoy forbids during the
// allocator call (proxy_get_shared_data): the host must trap.
package main

import "unsafe"

func main() {}

//go:wasmimport env proxy_get_shared_data
func getSharedData(key unsafe.Pointer, keySize uint32, retData, retSize, retCas unsafe.Pointer) uint32

//go:wasmimport env proxy_get_buffer_bytes
func getBufferBytes(bufferType, start, maxSize uint32, retData, retSize unsafe.Pointer) uint32

var keep [][]byte

//go:wasmexport proxy_abi_version_0_2_1
func abiVersion() {}

//go:wasmexport proxy_on_memory_allocate
func allocate(size uint32) uint32 {
	var p, n, cas uint32
	k := "k"
	getSharedData(unsafe.Pointer(unsafe.StringData(k)), 1, unsafe.Pointer(&p), unsafe.Pointer(&n), unsafe.Pointer(&cas))
	b := make([]byte, size+1)
	keep = append(keep, b)
	return uint32(uintptr(unsafe.Pointer(&b[0])))
}

//go:wasmexport proxy_on_context_create
func contextCreate(id, parent uint32) {}

//go:wasmexport proxy_on_vm_start
func vmStart(id, size uint32) uint32 { return 1 }

//go:wasmexport proxy_on_configure
func configure(id, size uint32) uint32 {
	var p, n uint32
	// Reading the configuration makes the host allocate: the allocator then breaks the rule.
	getBufferBytes(7, 0, size, unsafe.Pointer(&p), unsafe.Pointer(&n))
	return 1
}
