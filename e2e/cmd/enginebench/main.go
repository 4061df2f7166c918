// Command enginebench writes the generated part of BENCHMARKS.md (between its markers): every
// table `make bench` reports, from one run. `make bench` runs it:
//
//	go run ./e2e/cmd/enginebench -plugin plugin.wasm -unoptimized build/plugin.go.wasm \
//		-noop build/noop.wasm -hostcalls build/hostcalls.wasm -baseline build/baseline-REV.wasm \
//		-report BENCHMARKS.md
//
// Figures:
//   - per request, plugin.wasm in the two engines the project runs it in, wazero (e2e/envoyhost)
//     and V8 with Envoy's flags (e2e/v8host, through node), against the no-op plugin: CPU (and
//     wall) ns per request in interleaved rounds (every case once per round, in a fresh proxy of
//     one worker VM) and the median of the per-round ratios; the hybrid case (wazero only: the V8
//     host makes no HTTP calls) runs against redis-server and the Redis helper on loopback, which
//     this command starts; in V8 also the guest's time (inside exported calls minus inside
//     imports) and a sampled profile of it;
//   - eager and lazy compile times in V8, each in a fresh node process; the VM's memory after
//     100 000 requests over 10 000 keys; the module's size by section and its code by package;
//   - the Go benchmarks of algorithm, store, e2e (Redis and hybrid modes) and
//     internal/redishelper (a script call in Redis), run with go test and parsed.
//
// Nothing is asserted: the figures depend on the machine, and the ratios are what to compare.
// The targets' met/missed are computed from this run.
package main

import (
	"bytes"
	"cmp"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"time"
)

const (
	beginMarker = "<!-- enginebench:begin -->"
	endMarker   = "<!-- enginebench:end -->"
)

func main() {
	plugin := flag.String("plugin", "plugin.wasm", "the plugin module")
	noop := flag.String("noop", "build/noop.wasm", "the no-op plugin module (cmd/noop-plugin)")
	hostcalls := flag.String("hostcalls", "", "the module that only makes a decision's host calls (cmd/hostcalls-plugin, optional)")
	unoptimized := flag.String("unoptimized", "", "the plugin module as the Go linker wrote it, before wasm-opt (optional)")
	baseline := flag.String("baseline", "", "the plugin module to compare compile time with (optional)")
	baselineName := flag.String("baseline-name", "baseline", "how the report names the baseline module")
	rounds := flag.Int("rounds", 7, "interleaved rounds")
	requests := flag.Int("requests", 15000, "timed requests per case and round")
	warmup := flag.Int("warmup", 3000, "requests before timing (V8 compiles functions lazily, on first call)")
	compiles := flag.Int("compiles", 3, "node processes per module and compile mode")
	count := flag.Int("count", 3, "runs of each Go benchmark (go test -count)")
	redisOn := flag.Bool("redis", true, "start redis-server and the Redis helper for the hybrid case and run the Redis benchmarks (needs redis-server)")
	v8host := flag.String("v8host", "e2e/v8host", "the directory of the V8 host scripts")
	report := flag.String("report", "", "file whose report section to rewrite (default: print it)")
	flag.Parse()

	args := make([]string, len(os.Args)-1)
	for i, a := range os.Args[1:] {
		args[i] = shellQuote(a)
	}
	command := "go run ./e2e/cmd/enginebench " + strings.Join(args, " ")
	if os.Getenv("MAKELEVEL") != "" {
		command = "make bench`, i.e. `" + command
	}
	start := time.Now()
	md, err := run(options{plugin: *plugin, unoptimized: *unoptimized, noop: *noop, hostcalls: *hostcalls, baseline: *baseline, baselineName: *baselineName,
		rounds: *rounds, requests: *requests, warmup: *warmup, compiles: *compiles, count: *count, redis: *redisOn, v8host: *v8host, command: command, start: start})
	if err != nil {
		log.Fatal(err)
	}
	if *report == "" {
		fmt.Print(md)
		return
	}
	if err := rewrite(*report, md); err != nil {
		log.Fatal(err)
	}
}

type options struct {
	plugin, unoptimized, noop, hostcalls, baseline, baselineName string
	rounds, requests, warmup, compiles, count                    int
	redis                                                        bool
	v8host, command                                              string
	start                                                        time.Time
	helper                                                       string // the Redis helper's address, once started
}

var headers = [][2]string{{":method", "GET"}, {":path", "/api/items"}, {":authority", "api.example.com"}, {"x-api-key", "k"}}

func config(fields string) string {
	return `{"shared_data":{"slots":1024},"policies":[{"name":"p",` + fields + `}]}`
}

// The cases' names, for the rows the report computes with.
const (
	caseNoop      = "no-op plugin"
	caseAbsolute  = "absolute, 1 limit"
	caseAbsolute3 = "absolute, 3 limits (1 s, 1 min, 1 h)"
	caseLocal32   = "absolute, 1 limit, 32 client IPs"
	caseHybrid    = "hybrid, 1 limit, 32 client IPs (Redis helper on loopback)"
	caseHostcalls = "host calls of a decision, no logic (cmd/hostcalls-plugin)"
)

// cases are the plugins and configurations measured per request: the no-op plugin, then floodgate
// deciding locally with each strategy (limits high enough that requests pass, except the
// rejecting case), the hybrid case when the helper runs (on 32 keys, each hot enough to keep a
// reservation: the loop is closed, and with 1024 keys at Redis speed every key would stay cold
// and be decided in Redis), the 1-limit case on the module before wasm-opt and the
// host-calls-only plugin when given. The first three keep their places: the report's V8 profile
// reads them by index.
func cases(o options) []benchCase {
	abs1 := `"key":[{"type":"client_ip"}],"limits":[{"rate":1000000}]`
	cs := []benchCase{
		{Name: caseNoop, Wasm: o.noop, Config: "{}", Keys: 1024, Headers: headers},
		{Name: caseAbsolute, Wasm: o.plugin, Config: config(abs1), Keys: 1024, Headers: headers},
		{Name: caseAbsolute3, Wasm: o.plugin, Config: config(`"key":[{"type":"client_ip"}],"limits":[{"rate":1000000},{"requests":"100000000/m"},{"requests":"1000000000/h"}]`), Keys: 1024, Headers: headers},
		{Name: "suppressed, 1 limit", Wasm: o.plugin, Config: config(`"key":[{"type":"client_ip"}],"limits":[{"rate":1000000}],"strategy":"suppressed","hard_limit_factor":2`), Keys: 1024, Headers: headers},
		{Name: "gcra, 1 limit", Wasm: o.plugin, Config: config(`"key":[{"type":"client_ip"}],"limits":[{"rate":1000000}],"strategy":"gcra"`), Keys: 1024, Headers: headers},
		{Name: "token_bucket", Wasm: o.plugin, Config: config(`"key":[{"type":"client_ip"}],"limits":[{"rate":1000000,"burst":1000000}],"strategy":"token_bucket"`), Keys: 1024, Headers: headers},
		{Name: "absolute, every request rejected (local 429 answer)", Wasm: o.plugin, Config: config(`"key":[{"type":"constant","value":"all"}],"limits":[{"requests":"1/h"}]`), Keys: 1024, Headers: headers},
	}
	if o.helper != "" {
		cs = append(cs,
			benchCase{Name: caseLocal32, Wasm: o.plugin, Config: config(abs1), Keys: 32, Headers: headers},
			benchCase{Name: caseHybrid, Wasm: o.plugin, Config: hybridConfig(`[{"rate":1000000}]`), Keys: 32, Headers: headers,
				Clusters: map[string]string{helperCluster: o.helper}, WazeroOnly: true})
	}
	if o.unoptimized != "" {
		c := cs[1]
		c.Name, c.Wasm = "absolute, 1 limit, before wasm-opt", o.unoptimized
		cs = append(cs, c)
	}
	if o.hostcalls != "" {
		cs = append(cs, benchCase{Name: caseHostcalls, Wasm: o.hostcalls, Config: "{}", Keys: 1024, Headers: headers})
	}
	return cs
}

// indexOf is the index of the case named name in cs, or -1.
func indexOf(cs []benchCase, name string) int {
	for i, c := range cs {
		if c.Name == name {
			return i
		}
	}
	return -1
}

func run(o options) (string, error) {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	var redisNote string
	if o.redis {
		if _, err := exec.LookPath("redis-server"); err != nil {
			o.redis = false
			redisNote = "redis-server was not found (`make deps` installs it): the hybrid row and the Redis tables are left out."
		}
	} else {
		redisNote = "Run with `-redis=false`: the hybrid row and the Redis tables are left out (`make bench` gives them)."
	}
	if o.redis {
		log.Printf("starting redis-server and the Redis helper")
		addr, stop, err := startHelper()
		if err != nil {
			return "", err
		}
		defer stop()
		o.helper = addr
	}
	cs := cases(o)

	// Sizes first: they need no measuring.
	mods := []struct{ name, path string }{{"plugin.wasm", o.plugin}, {"no-op plugin", o.noop}}
	if o.unoptimized != "" {
		mods = append(mods, struct{ name, path string }{"plugin.wasm before wasm-opt", o.unoptimized})
	}
	if o.baseline != "" {
		mods = append(mods, struct{ name, path string }{o.baselineName, o.baseline})
	}
	sizes := map[string]moduleSize{}
	for _, m := range mods {
		s, err := readModule(m.path)
		if err != nil {
			return "", err
		}
		sizes[m.name] = s
	}

	log.Printf("compile times in V8 (%d node processes)", 2*o.compiles*len(mods))
	comp := map[string]*compileTimes{}
	for i := 0; i < o.compiles; i++ {
		for _, m := range mods {
			cfg := cs[1].Config
			if m.name == "no-op plugin" {
				cfg = "{}"
			}
			if comp[m.name] == nil {
				comp[m.name] = &compileTimes{}
			}
			if err := v8Compile(o.v8host, m.path, cfg, comp[m.name]); err != nil {
				return "", err
			}
		}
	}

	log.Printf("requests: %d interleaved rounds of %d requests per case, wazero then V8", o.rounds, o.requests)
	wz, err := wazeroRounds(cs, o.rounds, o.warmup, o.requests)
	if err != nil {
		return "", err
	}
	var inV8 []benchCase
	for _, c := range cs {
		if !c.WazeroOnly {
			inV8 = append(inV8, c)
		}
	}
	v8list, err := v8Rounds(o.v8host, inV8, o.rounds, o.warmup, o.requests)
	if err != nil {
		return "", err
	}
	v8 := make([]caseRounds, len(cs)) // by the index of cs; empty for wazero-only cases
	for _, r := range v8list {
		v8[indexOf(cs, r.Name)] = r
	}

	log.Printf("memory after 100 000 requests over 10 000 keys")
	type memRow struct {
		gogc         string
		wazero       uint32
		v8Mem, v8CPU float64
	}
	var mem []memRow
	for _, gogc := range []string{"", "50", "25"} {
		c := cs[1]
		c.Keys = 10000
		if gogc != "" {
			c.Env = map[string]string{"GOGC": gogc}
		}
		wzMem, err := wazeroMemory(c, 100000)
		if err != nil {
			return "", err
		}
		v8Mem, v8CPU, err := v8Memory(o.v8host, c, 100000)
		if err != nil {
			return "", err
		}
		mem = append(mem, memRow{gogc: gogc, wazero: wzMem, v8Mem: v8Mem, v8CPU: v8CPU})
	}
	v8Mem, wzMem := mem[0].v8Mem, mem[0].wazero

	log.Printf("Go benchmarks (go test -bench, %d runs each)", o.count)
	native, err := runGoBench("./algorithm/", "^BenchmarkDecide", o.count, "0.5s")
	if err != nil {
		return "", err
	}
	storeBench, err := runGoBench("./store/", ".", o.count, "0.5s")
	if err != nil {
		return "", err
	}
	var redisDecision, hybridCalls, scriptCost goBench
	if o.redis {
		abs := func(p string) string { a, _ := filepath.Abs(p); return a }
		env := []string{"FLOODGATE_WASM=" + abs(o.plugin), "FLOODGATE_NOOP_WASM=" + abs(o.noop)}
		if redisDecision, err = runGoBench("./e2e/", "^BenchmarkRedisDecision$", o.count, "", env...); err != nil {
			return "", err
		}
		if hybridCalls, err = runGoBench("./e2e/", "^BenchmarkHybridRedisCalls$", 1, "1x", env...); err != nil {
			return "", err
		}
		if scriptCost, err = runGoBench("./internal/redishelper/", "^BenchmarkScriptCost$", 1, "300x"); err != nil {
			return "", err
		}
	}

	w("## The plugin per request, its size and start-up, and the Go benchmarks (`make bench`)\n\n")
	w("Written by `%s` (see its doc comment); do not edit by hand: edit e2e/cmd/enginebench and run `make bench`. Nothing here is asserted by tests; timings on a shared machine are noisy, so the ratios (taken within one round, medians over rounds) are what to compare.\n\n", o.command)
	w("%s. Date: %s. The run took %s. V8 flags: `%s` (Envoy's: proxy-wasm-cpp-host src/v8/v8.cc).\n\n", machine(), o.start.UTC().Format("2006-01-02 15:04 UTC"), time.Since(o.start).Round(time.Second), strings.Join(envoyV8Flags, " "))
	if redisNote != "" {
		w("%s\n\n", redisNote)
	}

	w("### Per request\n\n")
	w("One worker VM; a request is context create, request headers, response headers, log, done, delete; 1024 client IPs rotate (one key for the rejecting case, 32 where the case says so). %d interleaved rounds: each round runs every case once, in a fresh proxy, %d requests after %d of warm-up; medians over the rounds, and the median of each round's ratio to the no-op plugin. ns are CPU time of the process per request (steadier than wall time on a shared machine; wall time in the last columns; the hybrid case's includes the helper's, which runs in this process, but not redis-server's). Guest time (V8 only) is the time inside exported calls (and the allocator) minus the time inside imports, less the cost of timing them (measured on a module that does nothing), as a share of a second, timed run, applied to the first run's CPU time. The V8 host makes no HTTP calls: the hybrid case runs in wazero only.\n\n", o.rounds, o.requests, o.warmup)
	w("| case | wazero ns | ratio | V8 ns | ratio | V8 guest ns | guest ratio | imports per request | wall ns: wazero, V8 |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for i, c := range cs {
		if c.WazeroOnly {
			w("| %s | %s | %.2f | | | | | | %s |\n", c.Name, num(median(field(wz[i].Rounds, "cpu"))), ratio(wz[i].Rounds, wz[0].Rounds, "cpu"), num(median(field(wz[i].Rounds, "ns"))))
			continue
		}
		w("| %s | %s | %.2f | %s | %.2f | %s | %.2f | %.0f | %s, %s |\n", c.Name,
			num(median(field(wz[i].Rounds, "cpu"))), ratio(wz[i].Rounds, wz[0].Rounds, "cpu"),
			num(median(field(v8[i].Rounds, "cpu"))), ratio(v8[i].Rounds, v8[0].Rounds, "cpu"),
			num(median(field(v8[i].Rounds, "guest"))), ratio(v8[i].Rounds, v8[0].Rounds, "guest"),
			median(field(v8[i].Rounds, "imports")), num(median(field(wz[i].Rounds, "ns"))), num(median(field(v8[i].Rounds, "ns"))))
	}
	hyb, local32 := indexOf(cs, caseHybrid), indexOf(cs, caseLocal32)
	if hyb >= 0 {
		w("\nHybrid against local on the same 32 keys: %.2fx (median of the per-round ratios of CPU time), with %.5f calls to the helper per timed request (the tick's syncs).\n",
			ratio(wz[hyb].Rounds, wz[local32].Rounds, "cpu"), median(field(wz[hyb].Rounds, "calls")))
	}

	w("\n### Targets\n\nMet or missed in this run.\n\n| target | measured | met |\n| --- | --- | --- |\n")
	target := func(what, measured string, ok bool) {
		w("| %s | %s | %s |\n", what, measured, map[bool]string{true: "yes", false: "**no**"}[ok])
	}
	wz1 := ratio(wz[1].Rounds, wz[0].Rounds, "cpu")
	target("wazero: absolute, 1 limit, at most 2x the no-op plugin's CPU time", fmt.Sprintf("%.2fx", wz1), wz1 <= 2)
	if hyb >= 0 {
		r := ratio(wz[hyb].Rounds, wz[local32].Rounds, "cpu")
		target("wazero: hybrid, 1 limit, at most 1.2x local absolute on the same keys", fmt.Sprintf("%.2fx", r), r <= 1.2)
	}
	g1, g3 := ratio(v8[1].Rounds, v8[0].Rounds, "guest"), ratio(v8[2].Rounds, v8[0].Rounds, "guest")
	floor := ""
	if i := indexOf(cs, caseHostcalls); i >= 0 {
		floor = fmt.Sprintf(" (the host calls alone, cmd/hostcalls-plugin: %.2fx)", ratio(v8[i].Rounds, v8[0].Rounds, "guest"))
	}
	target("V8 guest time, absolute 1 limit, at most 2x the no-op's", fmt.Sprintf("%.2fx%s", g1, floor), g1 <= 2)
	target("V8 guest time, absolute 3 limits, at most 3x the no-op's", fmt.Sprintf("%.2fx", g3), g3 <= 3)
	ps := sizes["plugin.wasm"]
	target("plugin.wasm at most 2.5 MB", fmt.Sprintf("%.2f MB", float64(ps.total)/1e6), ps.total <= 2500000)
	if o.baseline != "" {
		r := median(comp["plugin.wasm"].eagerCPU) / median(comp[o.baselineName].eagerCPU)
		wall := median(comp["plugin.wasm"].eager) / median(comp[o.baselineName].eager)
		target("eager TurboFan compile at most 45% of "+o.baselineName+"'s", fmt.Sprintf("%.0f%% of its CPU time (wall: %.0f%%)", 100*r, 100*wall), r <= 0.45)
	}
	target("memory per VM after 100 000 requests over 10 000 keys at most 4 MiB",
		fmt.Sprintf("V8 %.1f MiB, wazero %.1f MiB", v8Mem/(1<<20), float64(wzMem)/(1<<20)), v8Mem <= 4<<20)

	w("\n### Module size and compile time in V8\n\n")
	w("Eager: `new WebAssembly.Module` with `--no-wasm-lazy-compilation` (every function through TurboFan); lazy (V8's default): until the canary VM is configured (module, instance, `_initialize`, start, configure; functions compiled on first call). CPU ms of every thread of the process (V8 compiles on background threads), then wall ms; medians of %d fresh node processes each, interleaved.\n\n", o.compiles)
	w("| module | bytes | code | data | name section | eager compile, CPU ms | wall ms | lazy, first VM, CPU ms | wall ms |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, m := range mods {
		s, c := sizes[m.name], comp[m.name]
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", m.name, num(float64(s.total)), num(float64(s.code)), num(float64(s.data)), num(float64(s.names)),
			num(median(c.eagerCPU)), num(median(c.eager)), num(median(c.lazyCPU)), num(median(c.lazy)))
	}

	w("\n### Memory per VM\n\nLinear memory of the worker VM after 100 000 requests over 10 000 client IPs (absolute, 1 limit), with the collector's default and with a lower `GOGC` given to the VM (Envoy: `vm_config.environment_variables`; Istio: WasmPlugin `vmConfig.env`); the CPU time per request of that run in V8. The module starts with %s pages of 64 KiB (its static data and the first stack) before any heap.\n\n", num(float64(sizes["plugin.wasm"].initialPages)))
	w("| GOGC | wazero MiB | V8 MiB | V8 CPU ns per request |\n| --- | ---: | ---: | ---: |\n")
	for _, m := range mem {
		w("| %s | %.1f | %.1f | %s |\n", cmp.Or(m.gogc, "default (100)"), float64(m.wazero)/(1<<20), m.v8Mem/(1<<20), num(m.v8CPU))
	}

	pkgs, err := packagesOf("./cmd/floodgate")
	if err != nil {
		return "", err
	}
	noopPkgs, err := packagesOf("./cmd/noop-plugin")
	if err != nil {
		return "", err
	}
	for k, v := range noopPkgs {
		pkgs[k] = v
	}
	w("\n### Where plugin.wasm's code goes\n\nFunction body bytes by package (the name section's function names), largest first; the no-op plugin's column is what the Go runtime and the ABI layer cost alone.\n\n")
	w("| package | plugin.wasm | no-op plugin |\n| --- | ---: | ---: |\n")
	noopBy := map[string]float64{}
	for _, p := range byPackage(floats(sizes["no-op plugin"].funcs), pkgs) {
		noopBy[p.name] = p.value
	}
	pluginBy := byPackage(floats(ps.funcs), pkgs)
	var rest, restNoop float64
	for i, p := range pluginBy {
		if i < 25 {
			w("| %s | %s | %s |\n", p.name, num(p.value), num(noopBy[p.name]))
		} else {
			rest += p.value
			restNoop += noopBy[p.name]
		}
	}
	w("| (%d more) | %s | %s |\n", max(0, len(pluginBy)-25), num(rest), num(restNoop))

	w("\n### Where guest time goes in V8\n\nns per request in each package's wasm functions (self time: share of the samples of a third, profiled run, times the CPU ns per request; the sampler misses samples when the machine is busy, so this is a rough picture), for the no-op plugin and floodgate deciding with 1 and 3 limits; then the busiest functions of the 1-limit case.\n\n")
	w("| package | no-op | absolute, 1 limit | absolute, 3 limits |\n| --- | ---: | ---: | ---: |\n")
	per := make([]map[string]float64, 3)
	for i := range per {
		per[i] = map[string]float64{}
		for _, p := range byPackage(v8[i].GuestByFunction, pkgs) {
			per[i][p.name] = p.value
		}
	}
	for i, p := range byPackage(v8[1].GuestByFunction, pkgs) {
		if i == 15 {
			break
		}
		w("| %s | %s | %s | %s |\n", p.name, num(per[0][p.name]), num(p.value), num(per[2][p.name]))
	}
	w("\n| function (absolute, 1 limit) | ns per request |\n| --- | ---: |\n")
	for i, f := range sorted(v8[1].GuestByFunction) {
		if i == 20 {
			break
		}
		w("| `%s` | %s |\n", f.name, num(f.value))
	}

	nsCols := []column{intCol("ns/op", "ns/op"), intCol("B/op", "B/op"), intCol("allocs/op", "allocs/op")}
	w("\n### The algorithm, natively\n\n`%s`, medians of the %d runs. One decision on one key's state (`algorithm` Decide) under traffic at about 3.3x the limit (a mix of admissions and rejections); in place, as the plugin decides in the buffer shared data returned, and \"copying\" into a second buffer.\n\n", native.Command, o.count)
	w("%s", native.table("benchmark", nsCols, nil))
	w("\n### The store, natively\n\n`%s`, medians of the %d runs. One update (get, decide, compare-and-swap set) of a 160-byte payload over 1024 keys in the in-memory shared data.\n\n", storeBench.Command, o.count)
	w("%s", storeBench.table("benchmark", nsCols, nil))

	if o.redis {
		w("\n### Redis mode: one decision through the helper\n\n`%s` (FLOODGATE_WASM set to plugin.wasm), medians of the %d runs. One worker VM, sequential requests, each decided by one `EVALSHA` through the helper (`internal/redishelper`, in the benchmark's process) to a redis-server on loopback: the latency a decision adds.\n\n", redisDecision.Command, o.count)
		w("%s", redisDecision.table("benchmark", []column{intCol("ns/op", "ns per decision"), intCol("p50-µs", "p50 µs"), intCol("p99-µs", "p99 µs"), decCol("calls/decision", "helper calls per decision")}, nil))
		w("\n### Hybrid mode: calls to the helper against the request rate\n\n`%s`. One key of a hybrid policy (sync every 100 ms), one gateway of two workers, requests paced at each rate for 2 s; the key's first requests, before any reservation, included.\n\n", hybridCalls.Command)
		w("%s", hybridCalls.table("benchmark", []column{intCol("requests/s", "requests/s"), decCol("calls/s", "helper calls/s")}, nil))
		w("\n### A script call in Redis\n\n`%s`. Times are Redis's own (`INFO commandstats`: no network, no helper), bytes are `MEMORY USAGE` of a key named as the plugin names them. \"call\" is a decision on a key whose every bucket is live, moving to the next bucket; \"expiry\" the call after half the window passed at once.\n\n", scriptCost.Command)
		w("%s", scriptCost.table("policy", []column{intCol("B/key-1", "B/key after 1 request"), intCol("B/key-full", "B/key, every bucket live"), decCol("redis-µs/call", "µs/call"), decCol("redis-µs/expiry", "µs/expiry")},
			func(n string) string { return strings.TrimPrefix(n, "ScriptCost/") }))
	}
	return b.String(), nil
}

func floats(m map[string]int) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[k] = float64(v)
	}
	return out
}

func field(rs []round, which string) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		switch which {
		case "ns":
			out[i] = r.NS
		case "cpu":
			out[i] = r.CPUNS
		case "guest":
			out[i] = r.GuestNS
		case "imports":
			out[i] = r.ImportsPerRequest
		case "calls":
			out[i] = r.CallsPerRequest
		}
	}
	return out
}

// ratio is the median over rounds of a case's figure divided by the base case's in that round.
func ratio(rs, base []round, which string) float64 {
	a, b := field(rs, which), field(base, which)
	out := make([]float64, 0, len(a))
	for i := range a {
		if b[i] > 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return median(out)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// num formats a figure with thin groups of three digits, as BENCHMARKS.md writes them.
func num(x float64) string {
	s := fmt.Sprintf("%.0f", x)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			out = append(out, ' ')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// machine describes where the figures come from.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = ", load average " + strings.Join(strings.Fields(string(b))[:3], " ") + " at the start"
	}
	nodeVersion, _ := exec.Command("node", "-p", "process.version + ' (V8 ' + process.versions.v8 + ')'").Output()
	wazero := "?"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/tetratelabs/wazero" {
				wazero = d.Version
			}
		}
	}
	return fmt.Sprintf("Machine: %d cores, %s%s; %s, node %s, wazero %s", runtime.NumCPU(), cpu, load, runtime.Version(), strings.TrimSpace(string(nodeVersion)), wazero)
}

// rewrite replaces the report section of file (between the markers), or appends it.
func rewrite(file, md string) error {
	old, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	section := []byte(beginMarker + "\n" + md + endMarker + "\n")
	i, j := bytes.Index(old, []byte(beginMarker)), bytes.Index(old, []byte(endMarker))
	var out []byte
	if i >= 0 && j > i {
		out = append(append(append([]byte(nil), old[:i]...), section...), bytes.TrimPrefix(old[j+len(endMarker):], []byte("\n"))...)
	} else {
		out = append(append(bytes.TrimRight(old, "\n"), "\n\n"...), section...)
	}
	return os.WriteFile(file, out, 0o644)
}
