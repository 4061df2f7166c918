package envoyhost

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// rootContextID is the root context every VM creates first (Envoy numbers contexts per VM from 1).
const rootContextID = 1

// vm is one instance of the module with its own goroutine: everything that enters the module
// goes through do, one call at a time, as on an Envoy worker thread.
type vm struct {
	host  *Host
	index int
	mod   api.Module
	// closed is set on the VM goroutine when the module is closed: callbacks still queued (an
	// http call's answer, a tick) are dropped, as Envoy cancels a destroyed context's pending
	// calls (source/extensions/common/wasm/context.cc, Context::~Context cancels every
	// http_request_) and its timers go with the VM.
	closed bool
	ctx    context.Context
	tasks  chan func()
	quit   chan struct{}
	done   chan struct{}

	alloc      api.Function
	allocStack [1]uint64
	inAlloc    bool
	nextCtxID  uint32
	fns        map[string]api.Function

	// State of the callback running now (touched only on the VM goroutine).
	current  *Stream // the stream whose callback runs, or nil in root callbacks
	effectiv *Stream // set by proxy_set_effective_context
	callResp *httpCallResponse
	streams  map[uint32]*Stream
	metrics  map[uint32]*metric
	nextCall uint32

	ticker     *time.Ticker
	tickPeriod time.Duration
	tickStop   chan struct{}
	nextTick   time.Time // when the timer is due, under a Clock

	mu     sync.Mutex
	failed error
	record []string
}

type vmKey struct{}

func vmFrom(ctx context.Context) *vm { return ctx.Value(vmKey{}).(*vm) }

func newVM(ctx context.Context, h *Host, index int) (*vm, error) {
	v := &vm{
		host: h, index: index, tasks: make(chan func()), quit: make(chan struct{}), done: make(chan struct{}),
		nextCtxID: rootContextID + 1, fns: make(map[string]api.Function),
		streams: make(map[uint32]*Stream), metrics: make(map[uint32]*metric),
	}
	v.ctx = context.WithValue(context.Background(), vmKey{}, v)
	go v.loop()
	err := v.do(func() error {
		name := fmt.Sprintf("vm-%d", index)
		if index < 0 {
			name = "canary"
		}
		// _initialize runs here, on the VM goroutine, like every other entry into the module.
		mod, err := h.runtime.InstantiateModule(v.ctx, h.compiled,
			wazero.NewModuleConfig().WithName(name).WithStartFunctions("_initialize"))
		if err != nil {
			return fmt.Errorf("envoyhost: instantiate %s: %w", name, err)
		}
		v.mod = mod
		v.recordCall("_initialize")
		// Like proxy-wasm-cpp-host: malloc first, then proxy_on_memory_allocate.
		if v.alloc = mod.ExportedFunction("malloc"); v.alloc == nil {
			v.alloc = mod.ExportedFunction("proxy_on_memory_allocate")
		}
		if v.alloc == nil {
			return errors.New("envoyhost: the module exports no allocator (malloc or proxy_on_memory_allocate)")
		}
		return nil
	})
	if err != nil {
		close(v.quit)
		<-v.done
		return nil, err
	}
	return v, nil
}

func (v *vm) loop() {
	defer close(v.done)
	for {
		select {
		case t := <-v.tasks:
			t()
		case <-v.quit:
			return
		}
	}
}

// do runs f on the VM goroutine and waits for it.
func (v *vm) do(f func() error) error {
	errc := make(chan error, 1)
	select {
	case v.tasks <- func() { errc <- f() }:
		return <-errc
	case <-v.done:
		return errors.New("envoyhost: vm closed")
	}
}

// post runs f on the VM goroutine later, without waiting (timers, http call responses).
func (v *vm) post(f func()) {
	go func() {
		select {
		case v.tasks <- f:
		case <-v.done:
		}
	}()
}

func (v *vm) recordCall(format string, args ...any) {
	if !v.host.cfg.Record {
		return
	}
	v.mu.Lock()
	v.record = append(v.record, fmt.Sprintf(format, args...))
	v.mu.Unlock()
}

func (v *vm) recorded() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.record...)
}

func (v *vm) failure() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.failed
}

func (v *vm) fail(err error) {
	v.mu.Lock()
	if v.failed == nil {
		v.failed = err
	}
	v.mu.Unlock()
	v.host.log(v.index, 5, "envoyhost: vm failed: "+err.Error())
}

// call runs an exported callback; a trap fails the VM. An export the module lacks is skipped,
// and so is every callback once the VM is closed.
func (v *vm) call(name string, args ...uint64) (uint64, error) {
	if err := v.failure(); err != nil {
		return 0, err
	}
	if v.closed {
		return 0, nil
	}
	fn, ok := v.fns[name]
	if !ok {
		fn = v.mod.ExportedFunction(name)
		v.fns[name] = fn
	}
	if fn == nil {
		return 0, nil
	}
	v.recordCall("%s%v", name, args)
	res, err := fn.Call(v.ctx, args...)
	if err != nil {
		err = fmt.Errorf("%s: %w", name, err)
		v.fail(err)
		return 0, err
	}
	if len(res) > 0 {
		return res[0], nil
	}
	return 0, nil
}

// start runs proxy_on_context_create(root, 0), proxy_on_vm_start and proxy_on_configure.
func (v *vm) start() (bool, error) {
	if _, err := v.call("proxy_on_context_create", rootContextID, 0); err != nil {
		return false, err
	}
	ok, err := v.call("proxy_on_vm_start", rootContextID, uint64(len(v.host.cfg.VMConfig)))
	if err != nil || ok == 0 {
		return false, err
	}
	ok, err = v.call("proxy_on_configure", rootContextID, uint64(len(v.host.cfg.PluginConfig)))
	return ok != 0, err
}

func (v *vm) close(ctx context.Context) {
	_ = v.do(func() error {
		v.stopTicker()
		if v.failure() == nil {
			if done, err := v.call("proxy_on_done", rootContextID); err == nil && done != 0 {
				_, _ = v.call("proxy_on_delete", rootContextID)
			}
		}
		v.closed = true
		return v.mod.Close(ctx)
	})
	select {
	case <-v.done:
	default:
		close(v.quit)
		<-v.done
	}
}

// setTick arms or disarms the VM's timer; the first tick comes one period later.
func (v *vm) setTick(period time.Duration) {
	v.stopTicker()
	if period <= 0 {
		return
	}
	v.tickPeriod = period
	if c := v.host.cfg.Clock; c != nil {
		v.nextTick = c.Now().Add(period) // Clock.Advance fires it
		return
	}
	v.ticker = time.NewTicker(period)
	stop := make(chan struct{})
	v.tickStop = stop
	t := v.ticker
	go func() {
		for {
			select {
			case <-t.C:
				done := make(chan struct{})
				select {
				case v.tasks <- func() {
					defer close(done)
					_, _ = v.call("proxy_on_tick", rootContextID)
				}:
					<-done // no tick backlog: a slow tick delays the next one, as a timer would
				case <-stop:
					return
				case <-v.done:
					return
				}
			case <-stop:
				return
			case <-v.done:
				return
			}
		}
	}()
}

func (v *vm) stopTicker() {
	v.tickPeriod = 0
	if v.ticker != nil {
		v.ticker.Stop()
		close(v.tickStop)
		v.ticker = nil
	}
}

// errTrap is what a restricted or failing host call raises: wazero turns the panic into a trap
// that ends the guest call with an error.
type errTrap struct{ msg string }

func (e errTrap) Error() string { return e.msg }

// allocate asks the guest for size bytes. While it runs, the guest may only call proxy_log,
// fd_write and clock_time_get (Envoy's V8 restriction); anything else traps.
func (v *vm) allocate(size uint32) (uint32, error) {
	v.inAlloc = true
	v.allocStack[0] = uint64(size)
	err := v.alloc.CallWithStack(v.ctx, v.allocStack[:])
	v.inAlloc = false
	if err != nil {
		return 0, fmt.Errorf("allocate %d bytes: %w", size, err)
	}
	if v.allocStack[0] == 0 && size > 0 {
		return 0, fmt.Errorf("allocate %d bytes: the guest returned no memory", size)
	}
	return uint32(v.allocStack[0]), nil
}

// checkRestricted traps when a non-allowed import is called inside the allocator.
func (v *vm) checkRestricted(name string, count *atomic.Int64) {
	count.Add(1)
	if !v.inAlloc {
		return
	}
	switch name {
	case "env.proxy_log", "wasi_snapshot_preview1.fd_write", "wasi_snapshot_preview1.clock_time_get":
		return
	}
	panic(errTrap{msg: "restricted_callback: " + name + " called during the allocator call"})
}

// writeOut copies data into a guest buffer it allocates and stores its address and size at
// ptrPtr and sizePtr, as every proxy_get_* call returns values.
func (v *vm) writeOut(data []byte, ptrPtr, sizePtr uint32) uint32 {
	mem := v.mod.Memory()
	if len(data) == 0 {
		if !mem.WriteUint32Le(ptrPtr, 0) || !mem.WriteUint32Le(sizePtr, 0) {
			return statusInvalidMemoryAccess
		}
		return statusOK
	}
	p, err := v.allocate(uint32(len(data)))
	if err != nil {
		panic(errTrap{msg: err.Error()})
	}
	if !mem.Write(p, data) || !mem.WriteUint32Le(ptrPtr, p) || !mem.WriteUint32Le(sizePtr, uint32(len(data))) {
		return statusInvalidMemoryAccess
	}
	return statusOK
}

// read copies size bytes of guest memory at ptr.
func (v *vm) read(ptr, size uint32) ([]byte, bool) {
	if size == 0 {
		return nil, true
	}
	b, ok := v.mod.Memory().Read(ptr, size)
	if !ok {
		return nil, false
	}
	return append([]byte(nil), b...), true
}

// stream returns the stream host calls act on: the effective one, else the current one.
func (v *vm) stream() *Stream {
	if v.effectiv != nil {
		return v.effectiv
	}
	return v.current
}
