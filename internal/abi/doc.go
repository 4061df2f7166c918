// Package abi is the proxy-wasm ABI v0.2.1 edge of the plugin when it is built by upstream Go
// (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared).
//
// It has three parts:
//   - exports (wasip1 only): the proxy_on_* callbacks as //go:wasmexport functions, which hand
//     each event to the dispatcher;
//   - imports (wasip1 only): the env.proxy_* host functions as //go:wasmimport declarations,
//     with every size and pointer passed as 32-bit values as the ABI requires;
//   - host-agnostic pieces that are unit tested natively: the dispatcher (which context gets which
//     callback, the http-call callback registry), the header-map wire format and the pinned
//     allocations the host makes through proxy_on_memory_allocate.
//
// The plugin never uses this package directly: it talks to internal/host, whose wasip1 variant
// is built on this package and whose native variant forwards to the proxy-wasm-go-sdk emulator.
package abi
