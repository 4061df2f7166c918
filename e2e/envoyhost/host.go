// Package envoyhost is a proxy-wasm host on wazero that runs a plugin the way Envoy does, so that
// the real plugin.wasm can be tested here, where there is no Envoy.
//
// What it imitates (see docs/ARCHITECTURE.md, "The test host", for the source each behaviour follows):
//   - Envoy's lifecycle: a canary VM is started first and its configure decides whether the
//     configuration is accepted; then one VM per worker, each a separate instance of the module
//     driven by its own goroutine (its "worker thread"), started with _initialize, root context
//     creation, proxy_on_vm_start and proxy_on_configure; HTTP contexts are created lazily at the
//     first headers and end with proxy_on_log, proxy_on_done, proxy_on_delete.
//   - one shared-data store per proxy (per vm_id) with Envoy's compare-and-swap semantics and no
//     delete; metrics summed across VMs by name; per-VM ticks; stream properties; local
//     responses; paused and resumed streams; http calls really sent over loopback.
//   - the WASI functions Envoy 1.33 provides and no others (poll_oneoff and fd_fdstat_set_flags
//     answer ENOSYS), and the restriction Envoy's V8 puts on the guest while the host is inside
//     the guest's allocator: any import but proxy_log, fd_write and clock_time_get traps.
//
// A Host is one proxy. Several Hosts in one process are several gateways.
package envoyhost

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
)

// compilationCache keeps compiled modules across Hosts of one process (tests start many).
var compilationCache = wazero.NewCompilationCache()

// ErrConfigRejected is returned by New when the canary VM's configure returns false: Envoy then
// refuses the configuration (NACK or failed start).
var ErrConfigRejected = errors.New("envoyhost: plugin configuration rejected")

// Config describes one proxy running one plugin.
type Config struct {
	// Wasm is the module.
	Wasm []byte
	// VMs is the number of worker VMs (Envoy: one per worker thread). Default 2.
	VMs int
	// VMID, RootID and PluginName are vm_config.vm_id, root_id and name.
	VMID, RootID, PluginName string
	// PluginConfig and VMConfig are the configuration buffers.
	PluginConfig, VMConfig []byte
	// Env is the WASI environment (vm_config.environment_variables), e.g. GOGC=1 to collect often.
	Env map[string]string
	// Clusters maps a cluster name to "host:port", the targets of proxy_http_call.
	Clusters map[string]string
	// FailOpen is the failure policy of a failed VM: continue (true) or answer 503 (false).
	FailOpen bool
	// Log receives every log line; nil keeps them only in memory (see Logs).
	Log func(LogLine)
	// Record, when set, records every callback each VM receives (see Calls).
	Record bool
	// Shared lets several Hosts share one shared-data store; nil gives the Host its own.
	Shared *SharedData
	// Clock, when set, is the plugin's clock and drives its timers (see Clock); nil is real time.
	// Several Hosts may share one.
	Clock *Clock
}

// LogLine is one line the plugin logged.
type LogLine struct {
	VM    int
	Level uint32
	Msg   string
}

// Host is one proxy running one plugin on several worker VMs.
type Host struct {
	cfg      Config
	runtime  wazero.Runtime
	compiled wazero.CompiledModule
	vms      []*vm
	shared   *SharedData
	metrics  *metricStore
	next     atomic.Uint64 // round robin over VMs
	// inflight counts http calls whose answer was not delivered (or dropped) yet.
	inflight atomic.Int64

	// imports counts calls per import ("module.name"); the map is built once, the counters are
	// atomic, so counting costs no lock on the hot path.
	imports map[string]*atomic.Int64

	mu     sync.Mutex
	logs   []LogLine
	calls  []HTTPCallRecord
	closed bool
}

// New compiles the module, runs the canary VM's start and configure and then starts cfg.VMs
// worker VMs. The canary's configure returning false gives ErrConfigRejected with the plugin's
// critical log lines.
func New(ctx context.Context, cfg Config) (*Host, error) {
	if cfg.VMs <= 0 {
		cfg.VMs = 2
	}
	h := &Host{cfg: cfg, shared: cfg.Shared, metrics: newMetricStore(), imports: make(map[string]*atomic.Int64)}
	for name := range envFunctions {
		h.imports["env."+name] = new(atomic.Int64)
	}
	for name := range wasiFunctions {
		h.imports[wasiModule+"."+name] = new(atomic.Int64)
	}
	if h.shared == nil {
		h.shared = NewSharedData()
	}
	h.runtime = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(compilationCache))
	if err := h.instantiateHostModules(ctx); err != nil {
		h.runtime.Close(ctx)
		return nil, err
	}
	compiled, err := h.runtime.CompileModule(ctx, cfg.Wasm)
	if err != nil {
		h.runtime.Close(ctx)
		return nil, fmt.Errorf("envoyhost: compile: %w", err)
	}
	h.compiled = compiled
	if err := h.checkImports(); err != nil {
		h.runtime.Close(ctx)
		return nil, err
	}
	// The canary: Envoy starts a throw-away VM to validate the configuration.
	canary, err := h.startVM(ctx, -1)
	if err != nil {
		h.runtime.Close(ctx)
		return nil, err
	}
	canary.close(ctx)
	for i := 0; i < cfg.VMs; i++ {
		v, err := h.startVM(ctx, i)
		if err != nil {
			h.Close(ctx)
			return nil, err
		}
		h.vms = append(h.vms, v)
	}
	if cfg.Clock != nil {
		cfg.Clock.attach(h)
	}
	return h, nil
}

// workers returns the worker VMs.
func (h *Host) workers() []*vm { return h.vms }

// checkImports refuses a module that imports a function the profile lacks, as Envoy does.
func (h *Host) checkImports() error {
	var missing []string
	for _, f := range h.compiled.ImportedFunctions() {
		mod, name, _ := f.Import()
		switch mod {
		case "env":
			if _, ok := envFunctions[name]; !ok {
				missing = append(missing, mod+"."+name)
			}
		case wasiModule:
			if _, ok := wasiFunctions[name]; !ok {
				missing = append(missing, mod+"."+name)
			}
		default:
			missing = append(missing, mod+"."+name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("envoyhost: the module imports functions Envoy does not provide: %s", strings.Join(missing, ", "))
	}
	return nil
}

// startVM instantiates one VM and runs its start sequence; index -1 is the canary.
func (h *Host) startVM(ctx context.Context, index int) (*vm, error) {
	v, err := newVM(ctx, h, index)
	if err != nil {
		return nil, err
	}
	var ok bool
	err = v.do(func() error {
		var err error
		ok, err = v.start()
		return err
	})
	if err != nil {
		v.close(ctx)
		return nil, fmt.Errorf("envoyhost: vm %d start: %w", index, err)
	}
	if !ok {
		v.close(ctx)
		return nil, fmt.Errorf("%w: %s", ErrConfigRejected, strings.Join(h.logLines(index, 5), "; "))
	}
	return v, nil
}

func (h *Host) logLines(vmIndex int, level uint32) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, l := range h.logs {
		if l.VM == vmIndex && l.Level >= level {
			out = append(out, l.Msg)
		}
	}
	return out
}

// Close stops every VM (root contexts get proxy_on_done and proxy_on_delete) and the runtime.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	if h.cfg.Clock != nil {
		h.cfg.Clock.detach(h)
	}
	for _, v := range h.vms {
		v.close(ctx)
	}
	return h.runtime.Close(ctx)
}

// SharedData returns the proxy's shared-data store.
func (h *Host) SharedData() *SharedData { return h.shared }

// Logs returns every line logged so far.
func (h *Host) Logs() []LogLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]LogLine(nil), h.logs...)
}

func (h *Host) log(vmIndex int, level uint32, msg string) {
	line := LogLine{VM: vmIndex, Level: level, Msg: msg}
	h.mu.Lock()
	if len(h.logs) < 100000 {
		h.logs = append(h.logs, line)
	}
	h.mu.Unlock()
	if h.cfg.Log != nil {
		h.cfg.Log(line)
	}
}

// ImportCalls returns how often each import ("module.name") was called, over all VMs.
func (h *Host) ImportCalls() map[string]int {
	out := make(map[string]int, len(h.imports))
	for k, v := range h.imports {
		if n := v.Load(); n > 0 {
			out[k] = int(n)
		}
	}
	return out
}

// Failures returns the errors of VMs that trapped (Envoy marks such a VM failed).
func (h *Host) Failures() []error {
	var out []error
	for _, v := range h.vms {
		if err := v.failure(); err != nil {
			out = append(out, fmt.Errorf("vm %d: %w", v.index, err))
		}
	}
	return out
}

// Calls returns the callbacks VM index received, when Config.Record is set.
func (h *Host) Calls(index int) []string {
	return h.vms[index].recorded()
}

// VMs returns the number of worker VMs.
func (h *Host) VMs() int { return len(h.vms) }

// MemoryBytes returns the linear memory size of worker VM index.
func (h *Host) MemoryBytes(index int) uint32 {
	var n uint32
	_ = h.vms[index].do(func() error { n = h.vms[index].mod.Memory().Size(); return nil })
	return n
}

// now is the real clock, in nanoseconds since the epoch.
func now() uint64 { return uint64(time.Now().UnixNano()) }

// pluginNow is the clock proxy_get_current_time_nanoseconds reads: Config.Clock, or real time.
func (h *Host) pluginNow() uint64 {
	if h.cfg.Clock != nil {
		return uint64(h.cfg.Clock.Now().UnixNano())
	}
	return now()
}

// WaitCalls waits until every http call the plugin made has had its answer delivered (or
// dropped, the VM closed), for at most timeout; it tells whether they all had.
func (h *Host) WaitCalls(timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); h.inflight.Load() > 0; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}
