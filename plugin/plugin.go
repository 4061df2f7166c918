// Package plugin is floodgate's filter logic, host-agnostic: it implements the proxy-wasm context
// interfaces of the SDK's types package and reaches the host only through internal/host, so the
// same code runs as the wasm plugin (cmd/floodgate) and natively under the SDK's proxytest
// emulator.
//
// Per request, every policy whose match holds builds its key, picks its tier, and has the tier's
// backend decide (backend.go: local shared data, Redis through the helper, or hybrid
// reservations); a failed decision takes the policy's failure mode (failure.go). The request
// then goes on (rate-limit headers are added to the response) or is answered locally (429,
// Retry-After, headers, body), and a rejected request gives back what the other policies counted
// for it (undo.go). Policies that count on the response wait for it (response.go).
package plugin

import (
	"errors"
	"math/rand/v2"
	"strings"

	"github.com/floodgate-proxy/floodgate/config"
	"github.com/floodgate-proxy/floodgate/internal/host"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// Options are the plugin's injectable dependencies; the zero value uses the wall clock and a
// seeded random source.
type Options struct {
	// NowMs returns the time in milliseconds. Every worker VM of a proxy must agree on it, which
	// is why the default is the host's wall clock (the Go runtime's monotonic clock starts anew in
	// each VM).
	NowMs func() int64
	// Rand returns a draw in [0, 1) for the suppressed strategy.
	Rand func() float64
}

// NewVM returns the plugin's VM context.
func NewVM(opts Options) types.VMContext {
	if opts.NowMs == nil {
		opts.NowMs = host.NowMillis
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	return &vmContext{opts: opts}
}

type vmContext struct {
	types.DefaultVMContext
	opts Options
}

// NewPluginContext creates the root context that holds one configuration.
func (v *vmContext) NewPluginContext(id uint32) types.PluginContext {
	return &pluginContext{id: id, opts: v.opts}
}

// pluginContext is a root context: one loaded configuration and what it compiled to.
type pluginContext struct {
	types.DefaultPluginContext
	id      uint32
	opts    Options
	limiter *limiter
	probe   *probe // the Redis helper's check at load (probe.go)
}

// OnPluginStart reads and validates the configuration. A bad configuration is logged at
// critical level, one line per problem, and refused: Envoy then rejects it (canary VM) or fails
// the plugin (worker VM).
func (p *pluginContext) OnPluginStart(int) types.OnPluginStartStatus {
	data, err := host.PluginConfiguration()
	if err != nil && !errors.Is(err, types.ErrorStatusNotFound) {
		host.Log(host.LevelCritical, "floodgate: reading the configuration: "+err.Error())
		return types.OnPluginStartStatusFailed
	}
	cfg, err := config.Parse(data) // an absent configuration is refused as empty
	if err == nil {
		p.limiter, err = newLimiter(cfg, p.opts)
	}
	if err == nil && p.limiter.helper != nil {
		p.limiter.helper.rootID = p.id
	}
	if err == nil {
		p.probe, err = newProbe(p.limiter.helper, p.limiter.sync == nil)
	}
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			host.Log(host.LevelCritical, "floodgate: invalid configuration: "+line)
		}
		return types.OnPluginStartStatusFailed
	}
	host.Log(host.LevelInfo, "floodgate: configuration loaded: "+p.limiter.summary())
	if p.probe != nil {
		p.probe.tick(p.opts.NowMs())
	}
	return types.OnPluginStartStatusOK
}

// OnTick runs the hybrid backend's syncs and the helper's check.
func (p *pluginContext) OnTick() {
	if p.limiter != nil {
		p.limiter.tick()
	}
	if p.probe != nil {
		p.probe.tick(p.opts.NowMs())
	}
}

// NewHttpContext creates the context of one request.
func (p *pluginContext) NewHttpContext(id uint32) types.HttpContext {
	return &httpContext{id: id, limiter: p.limiter}
}

// httpContext is one request.
type httpContext struct {
	types.DefaultHttpContext
	id      uint32
	limiter *limiter
	req     request
	// answer holds the rate-limit headers to add to the upstream's response, in answerBuf when
	// they fit (the IETF style's two).
	answer    [][2]string
	answerBuf [2][2]string
	// responses are the policies that wait for the upstream's answer (response.go).
	responses []responseHook
}

// OnHttpRequestHeaders decides the request; a redis policy pauses it until its decision arrives.
func (h *httpContext) OnHttpRequestHeaders(int, bool) types.Action {
	if h.limiter == nil {
		return types.ActionContinue
	}
	v, pending := h.limiter.decide(&h.req, h.id, h.resume)
	if pending {
		return types.ActionPause
	}
	return h.answerWith(v)
}

// answerWith applies a verdict inside a request callback.
func (h *httpContext) answerWith(v verdict) types.Action {
	if v.reject != nil {
		if err := host.SendLocalResponse(v.reject.Status, v.reject.Headers, v.reject.Body); err != nil {
			host.Log(host.LevelError, "floodgate: local response: "+err.Error())
			return types.ActionContinue
		}
		return types.ActionPause
	}
	h.answer = append(h.answerBuf[:0], v.headers...)
	if len(v.responses) > 0 {
		h.responses = append(h.responses[:0], v.responses...)
	}
	return types.ActionContinue
}

// resume applies the verdict of a paused request, from an http call's callback (the request's
// context is the effective one).
func (h *httpContext) resume(v verdict) {
	if h.answerWith(v) == types.ActionContinue {
		if err := host.ResumeRequest(); err != nil {
			host.Log(host.LevelError, "floodgate: resuming a request: "+err.Error())
		}
	}
}

// OnHttpResponseHeaders adds the rate-limit headers of an admitted request to the response.
func (h *httpContext) OnHttpResponseHeaders(int, bool) types.Action {
	if len(h.responses) > 0 {
		if status, ok := responseStatus(); ok {
			h.limiter.response(h.responses, status, h.id)
		}
		h.responses = nil
	}
	for _, kv := range h.answer {
		_ = host.AddResponseHeader(kv[0], kv[1])
	}
	return types.ActionContinue
}
