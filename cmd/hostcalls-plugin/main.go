// Command hostcalls-plugin is a yardstick of the benchmarks, next to cmd/noop-plugin: a plugin
// built exactly like floodgate that makes the host calls a local decision with one limit makes
// (the clock, source.address, a shared-data get and compare-and-swap set of a slot-sized value,
// one counter, two rate-limit headers on the response) and computes nothing. What floodgate costs
// beyond it is its own logic; what it costs beyond the no-op plugin, up to it, is the price of the
// host calls. make bench reports all three.
package main

import (
	"github.com/floodgate-proxy/floodgate/internal/host"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

func main() {}

func init() { host.Register(&vm{}) }

type vm struct{ types.DefaultVMContext }

func (*vm) NewPluginContext(uint32) types.PluginContext { return &pluginContext{} }

type pluginContext struct {
	types.DefaultPluginContext
	allowed host.Metric
	slot    [712]byte // the size of floodgate's slot for one key and one 1 s limit
}

func (p *pluginContext) OnPluginStart(int) types.OnPluginStartStatus {
	p.allowed, _ = host.DefineMetric(host.Counter, "hostcalls.allowed")
	return types.OnPluginStartStatusOK
}

func (p *pluginContext) NewHttpContext(uint32) types.HttpContext { return &httpContext{p: p} }

type httpContext struct {
	types.DefaultHttpContext
	p *pluginContext
}

// OnHttpRequestHeaders reads the clock and the client's address, then reads and writes the
// client's shared-data entry and counts the request.
func (h *httpContext) OnHttpRequestHeaders(int, bool) types.Action {
	now := host.NowMillis()
	addr, _ := host.Property("source", "address")
	key := "hostcalls:" + string(addr)
	_, cas, _ := host.SharedData(key)
	h.p.slot[0] = byte(now)
	_ = host.SetSharedData(key, h.p.slot[:], cas)
	_ = h.p.allowed.Add(1)
	return types.ActionContinue
}

// OnHttpResponseHeaders adds the two IETF rate-limit headers.
func (h *httpContext) OnHttpResponseHeaders(int, bool) types.Action {
	_ = host.AddResponseHeader("ratelimit-policy", `"p";q=1000000;w=1`)
	_ = host.AddResponseHeader("ratelimit", `"p";r=999999;t=1`)
	return types.ActionContinue
}
