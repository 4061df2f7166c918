//go:build wasip1

package abi

import "github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

var dispatcher = NewDispatcher(&types.DefaultVMContext{})

// SetVMContext installs the plugin. Call it from init(): a reactor module never runs main.
func SetVMContext(vm types.VMContext) { dispatcher = NewDispatcher(vm) }

// RegisterCallout remembers the callback of an http call dispatched by the plugin.
func RegisterCallout(token uint32, cb func(numHeaders, bodySize, numTrailers int)) {
	dispatcher.RegisterCallout(token, cb)
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

//go:wasmexport proxy_abi_version_0_2_1
func proxyABIVersion() {}

//go:wasmexport proxy_on_memory_allocate
func proxyOnMemoryAllocate(size uint32) uint32 { return Allocate(size) }

//go:wasmexport proxy_on_context_create
func proxyOnContextCreate(id, parent uint32) { dispatcher.ContextCreate(id, parent) }

//go:wasmexport proxy_on_vm_start
func proxyOnVMStart(_, size uint32) uint32 { return b2u(dispatcher.VMStart(size)) }

//go:wasmexport proxy_on_configure
func proxyOnConfigure(id, size uint32) uint32 { return b2u(dispatcher.Configure(id, size)) }

//go:wasmexport proxy_on_tick
func proxyOnTick(id uint32) { dispatcher.Tick(id) }

//go:wasmexport proxy_on_request_headers
func proxyOnRequestHeaders(id, n, eos uint32) uint32 {
	return uint32(dispatcher.Stream(id, RequestHeaders, n, eos != 0))
}

//go:wasmexport proxy_on_request_body
func proxyOnRequestBody(id, size, eos uint32) uint32 {
	return uint32(dispatcher.Stream(id, RequestBody, size, eos != 0))
}

//go:wasmexport proxy_on_request_trailers
func proxyOnRequestTrailers(id, n uint32) uint32 {
	return uint32(dispatcher.Stream(id, RequestTrailers, n, true))
}

//go:wasmexport proxy_on_response_headers
func proxyOnResponseHeaders(id, n, eos uint32) uint32 {
	return uint32(dispatcher.Stream(id, ResponseHeaders, n, eos != 0))
}

//go:wasmexport proxy_on_response_body
func proxyOnResponseBody(id, size, eos uint32) uint32 {
	return uint32(dispatcher.Stream(id, ResponseBody, size, eos != 0))
}

//go:wasmexport proxy_on_response_trailers
func proxyOnResponseTrailers(id, n uint32) uint32 {
	return uint32(dispatcher.Stream(id, ResponseTrailers, n, true))
}

//go:wasmexport proxy_on_http_call_response
func proxyOnHTTPCallResponse(_, token, numHeaders, bodySize, numTrailers uint32) {
	dispatcher.HTTPCallResponse(token, numHeaders, bodySize, numTrailers)
}

//go:wasmexport proxy_on_log
func proxyOnLog(id uint32) { dispatcher.Log(id) }

//go:wasmexport proxy_on_done
func proxyOnDone(id uint32) uint32 { return b2u(dispatcher.Done(id)) }

//go:wasmexport proxy_on_delete
func proxyOnDelete(id uint32) { dispatcher.Delete(id) }
