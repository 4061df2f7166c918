package abi

import (
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// Dispatcher routes the host's callbacks to the plugin's contexts. A proxy-wasm VM is single
// threaded, so a Dispatcher is never used concurrently.
type Dispatcher struct {
	vm      types.VMContext
	roots   map[uint32]*rootContext
	streams map[uint32]streamContext // by value: no allocation per stream
	// callouts maps an http-call token to the callback registered when the call was dispatched.
	callouts map[uint32]func(numHeaders, bodySize, numTrailers int)
}

type rootContext struct {
	ctx types.PluginContext
}

type streamContext struct {
	ctx  types.HttpContext
	root uint32
}

// NewDispatcher returns a Dispatcher that creates plugin contexts from vm.
func NewDispatcher(vm types.VMContext) *Dispatcher {
	return &Dispatcher{
		vm:       vm,
		roots:    make(map[uint32]*rootContext),
		streams:  make(map[uint32]streamContext),
		callouts: make(map[uint32]func(int, int, int)),
	}
}

// ContextCreate creates a root context when parent is 0, else an HTTP context under the root
// context parent. An unknown parent, or a plugin that has no HTTP context, is ignored: the
// stream's callbacks then find no context and let the stream continue.
func (d *Dispatcher) ContextCreate(id, parent uint32) {
	if parent == 0 {
		d.roots[id] = &rootContext{ctx: d.vm.NewPluginContext(id)}
		return
	}
	root, ok := d.roots[parent]
	if !ok {
		return
	}
	if hc := root.ctx.NewHttpContext(id); hc != nil {
		d.streams[id] = streamContext{ctx: hc, root: parent}
	}
}

// VMStart runs the VM context's OnVMStart.
func (d *Dispatcher) VMStart(vmConfigSize uint32) bool {
	return bool(d.vm.OnVMStart(int(vmConfigSize)))
}

// Configure runs OnPluginStart of the root context id; an unknown id fails.
func (d *Dispatcher) Configure(id, pluginConfigSize uint32) bool {
	root, ok := d.roots[id]
	if !ok {
		return false
	}
	return bool(root.ctx.OnPluginStart(int(pluginConfigSize)))
}

// Tick runs OnTick of the root context id.
func (d *Dispatcher) Tick(id uint32) {
	if root, ok := d.roots[id]; ok {
		root.ctx.OnTick()
	}
}

// Stream phases, in the order of the ABI's proxy_on_* callbacks.
const (
	RequestHeaders = iota
	RequestBody
	RequestTrailers
	ResponseHeaders
	ResponseBody
	ResponseTrailers
)

// Stream runs the callback of phase on the HTTP context id and returns the action for the host.
// size is the header count, body size or trailer count of the phase.
func (d *Dispatcher) Stream(id uint32, phase int, size uint32, endOfStream bool) types.Action {
	s, ok := d.streams[id]
	if !ok {
		return types.ActionContinue
	}
	n := int(size)
	switch phase {
	case RequestHeaders:
		return s.ctx.OnHttpRequestHeaders(n, endOfStream)
	case RequestBody:
		return s.ctx.OnHttpRequestBody(n, endOfStream)
	case RequestTrailers:
		return s.ctx.OnHttpRequestTrailers(n)
	case ResponseHeaders:
		return s.ctx.OnHttpResponseHeaders(n, endOfStream)
	case ResponseBody:
		return s.ctx.OnHttpResponseBody(n, endOfStream)
	case ResponseTrailers:
		return s.ctx.OnHttpResponseTrailers(n)
	}
	return types.ActionContinue
}

// Log runs at the end of a stream (proxy_on_log): the HTTP context's OnHttpStreamDone.
func (d *Dispatcher) Log(id uint32) {
	if s, ok := d.streams[id]; ok {
		s.ctx.OnHttpStreamDone()
	}
}

// Done answers proxy_on_done: a root context may ask to finish later (OnPluginDone false);
// a stream is always done.
func (d *Dispatcher) Done(id uint32) bool {
	if root, ok := d.roots[id]; ok {
		return root.ctx.OnPluginDone()
	}
	return true
}

// Delete forgets the context id.
func (d *Dispatcher) Delete(id uint32) {
	delete(d.streams, id)
	delete(d.roots, id)
}

// RegisterCallout remembers the callback of the http call token.
func (d *Dispatcher) RegisterCallout(token uint32, cb func(numHeaders, bodySize, numTrailers int)) {
	d.callouts[token] = cb
}

// HTTPCallResponse runs, once, the callback registered for token. A reset arrives as 0/0/0.
func (d *Dispatcher) HTTPCallResponse(token, numHeaders, bodySize, numTrailers uint32) {
	cb, ok := d.callouts[token]
	if !ok {
		return
	}
	delete(d.callouts, token)
	cb(int(numHeaders), int(bodySize), int(numTrailers))
}

// Contexts returns how many root and HTTP contexts are alive (for leak tests).
func (d *Dispatcher) Contexts() (roots, streams int) {
	return len(d.roots), len(d.streams)
}
