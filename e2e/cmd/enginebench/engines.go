package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/floodgate-proxy/floodgate/e2e/envoyhost"
)

// envoyV8Flags are the V8 settings of Envoy's wasm runtime (proxy-wasm-cpp-host src/v8/v8.cc,
// engine(): Liftoff off, memory capped at 1 GiB); e2e/v8host refuses to run without them.
var envoyV8Flags = []string{"--no-liftoff", "--wasm-max-mem-pages=16384"}

// benchCase is one plugin and configuration, driven with one request shape.
type benchCase struct {
	Name    string      `json:"name"`
	Wasm    string      `json:"wasm"`
	Config  string      `json:"config"`
	Keys    int         `json:"keys"` // distinct client addresses, rotated
	Headers [][2]string `json:"headers"`
	// Env is the VM's environment (Envoy: vm_config.environment_variables), e.g. GOGC.
	Env map[string]string `json:"env,omitempty"`
	// Clusters are the proxy_http_call targets (the hybrid case's helper); the V8 host makes
	// no HTTP calls, so a case with them is WazeroOnly.
	Clusters   map[string]string `json:"-"`
	WazeroOnly bool              `json:"-"`
}

// source is the i-th client address, as e2e/v8host/bench.mjs has it.
func source(i int) string { return fmt.Sprintf("10.0.%d.%d:1234", (i>>8)&255, i&255) }

// round is one case's figures in one round.
type round struct {
	NS                float64 `json:"ns"`     // wall time
	CPUNS             float64 `json:"cpu_ns"` // CPU time of the whole process
	GuestNS           float64 `json:"guest_ns"`
	ImportsPerRequest float64 `json:"imports_per_request"`
	MemoryBytes       float64 `json:"memory_bytes"`
	CallsPerRequest   float64 `json:"-"` // HTTP calls (to the Redis helper) per timed request, wazero
}

type caseRounds struct {
	Name            string             `json:"name"`
	Rounds          []round            `json:"rounds"`
	GuestByFunction map[string]float64 `json:"guest_by_function"`
}

// wazeroHost starts a proxy of one worker VM in the wazero host.
func wazeroHost(c benchCase) (*envoyhost.Host, error) {
	wasm, err := os.ReadFile(c.Wasm)
	if err != nil {
		return nil, err
	}
	return envoyhost.New(context.Background(), envoyhost.Config{Wasm: wasm, VMs: 1, VMID: "floodgate", RootID: "floodgate", PluginConfig: []byte(c.Config), Env: c.Env, Clusters: c.Clusters})
}

// drive sends n requests through h: request headers, response headers (":status: 200" from the
// upstream when the request continued), log, done, delete.
func drive(h *envoyhost.Host, c benchCase, n int) error {
	ctx := context.Background()
	for i := 0; i < n; i++ {
		s := h.NewStream(map[string]string{"source.address": source(i % c.Keys)})
		o, err := s.RequestHeaders(ctx, c.Headers, true)
		if err == nil && o == envoyhost.OutcomeContinue {
			_, err = s.ResponseHeaders(ctx, [][2]string{{":status", "200"}}, true)
		}
		if err == nil {
			err = s.Done()
		}
		if err != nil {
			return fmt.Errorf("%s: request %d: %w", c.Name, i, err)
		}
	}
	return nil
}

// wazeroRounds runs interleaved rounds in the wazero host: every case in a fresh proxy, warm-up,
// then n timed requests. The host cannot tell guest time from host time cheaply: GuestNS stays 0.
func wazeroRounds(cases []benchCase, rounds, warmup, n int) ([]caseRounds, error) {
	out := make([]caseRounds, len(cases))
	for r := 0; r < rounds; r++ {
		for i, c := range cases {
			out[i].Name = c.Name
			h, err := wazeroHost(c)
			if err != nil {
				return nil, err
			}
			err = drive(h, c, warmup)
			calls := len(h.HTTPCalls())
			start, cpu := time.Now(), cpuTime()
			if err == nil {
				err = drive(h, c, n)
			}
			ns := float64(time.Since(start).Nanoseconds()) / float64(n)
			cpuNS := float64((cpuTime() - cpu).Nanoseconds()) / float64(n)
			calls = len(h.HTTPCalls()) - calls
			out[i].Rounds = append(out[i].Rounds, round{NS: ns, CPUNS: cpuNS, MemoryBytes: float64(h.MemoryBytes(0)), CallsPerRequest: float64(calls) / float64(n)})
			if f := h.Failures(); err == nil && len(f) > 0 {
				err = fmt.Errorf("%s: %v", c.Name, f)
			}
			h.Close(context.Background())
			if err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// cpuTime is the CPU time this process used so far (every thread: the VM's goroutine, the
// caller's, the collector's).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// wazeroMemory returns the linear memory of one worker VM after n requests over keys clients.
func wazeroMemory(c benchCase, n int) (uint32, error) {
	h, err := wazeroHost(c)
	if err != nil {
		return 0, err
	}
	defer h.Close(context.Background())
	if err := drive(h, c, n); err != nil {
		return 0, err
	}
	return h.MemoryBytes(0), nil
}

// node runs e2e/v8host/bench.mjs on job with Envoy's V8 flags (and extra ones) and decodes its
// answer into out.
func node(v8host string, job any, out any, extra ...string) error {
	f, err := os.CreateTemp("", "enginebench-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := json.NewEncoder(f).Encode(job); err != nil {
		return err
	}
	f.Close()
	args := append(append(append([]string(nil), envoyV8Flags...), extra...), filepath.Join(v8host, "bench.mjs"), f.Name())
	cmd := exec.Command("node", args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("node %v: %w", args, err)
	}
	return json.Unmarshal(stdout, out)
}

// v8Rounds runs the same interleaved rounds in V8 (one node process: one compiled module per
// plugin, as Envoy shares one between its VMs).
func v8Rounds(v8host string, cases []benchCase, rounds, warmup, n int) ([]caseRounds, error) {
	var res struct {
		Cases []caseRounds `json:"cases"`
	}
	job := map[string]any{"mode": "requests", "rounds": rounds, "warmup": warmup, "requests": n, "cases": cases}
	return res.Cases, node(v8host, job, &res)
}

// v8Memory returns the linear memory of one worker VM in V8 after n requests, and the CPU ns
// they took each.
func v8Memory(v8host string, c benchCase, n int) (bytes, cpuNS float64, err error) {
	var res struct {
		MemoryBytes float64 `json:"memory_bytes"`
		CPUNS       float64 `json:"cpu_ns"`
	}
	err = node(v8host, map[string]any{"mode": "memory", "case": c, "requests": n, "keys": c.Keys}, &res)
	return res.MemoryBytes, res.CPUNS, err
}

// compileTimes is one module's compile figures in V8, in ms, one per node process.
type compileTimes struct{ eager, eagerCPU, lazy, lazyCPU []float64 }

// v8Compile measures, each in a fresh node process, new WebAssembly.Module compiled eagerly with
// TurboFan (--no-wasm-lazy-compilation) and, with V8's default lazy compilation, the time until
// the canary VM is configured; wall and CPU time of each.
func v8Compile(v8host, wasm, config string, into *compileTimes) error {
	var res struct {
		ModuleMS     float64 `json:"module_ms"`
		ModuleCPUMS  float64 `json:"module_cpu_ms"`
		FirstVMMS    float64 `json:"first_vm_ms"`
		FirstVMCPUMS float64 `json:"first_vm_cpu_ms"`
	}
	job := map[string]any{"mode": "compile", "wasm": wasm, "config": config}
	if err := node(v8host, job, &res, "--no-wasm-lazy-compilation"); err != nil {
		return err
	}
	into.eager, into.eagerCPU = append(into.eager, res.ModuleMS), append(into.eagerCPU, res.ModuleCPUMS)
	if err := node(v8host, job, &res); err != nil {
		return err
	}
	into.lazy, into.lazyCPU = append(into.lazy, res.FirstVMMS), append(into.lazyCPU, res.FirstVMCPUMS)
	return nil
}
