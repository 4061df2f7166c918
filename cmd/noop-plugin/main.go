// Command noop-plugin is the yardstick of the benchmarks: a proxy-wasm plugin built exactly like
// floodgate (same ABI layer, same host package) that reads one request header and lets the request
// continue. The cost of floodgate per request is reported as a ratio to this plugin's cost in the
// same host and the same run.
package main

import (
	"github.com/floodgate-proxy/floodgate/internal/host"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

func main() {}

func init() { host.Register(&vm{}) }

type vm struct{ types.DefaultVMContext }

func (*vm) NewPluginContext(uint32) types.PluginContext { return &pluginContext{} }

type pluginContext struct{ types.DefaultPluginContext }

func (*pluginContext) NewHttpContext(uint32) types.HttpContext { return &httpContext{} }

type httpContext struct{ types.DefaultHttpContext }

// OnHttpRequestHeaders reads one header, as the cheapest useful plugin would, and continues.
func (*httpContext) OnHttpRequestHeaders(int, bool) types.Action {
	_, _ = host.RequestHeader("x-api-key")
	return types.ActionContinue
}
