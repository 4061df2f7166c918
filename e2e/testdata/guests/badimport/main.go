//go:build wasip1

// Command badimport is a test guest that imports a function Envoy does not provide: the host
// must refuse to load it.
package main

func main() {}

//go:wasmimport env proxy_get_configuration
func getConfiguration() uint32

//go:wasmexport proxy_on_vm_start
func vmStart(id, size uint32) uint32 { return getConfiguration() }
