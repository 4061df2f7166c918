// Measures plugins in V8 for the engine report (e2e/cmd/enginebench writes BENCHMARKS.md from
// it; run it through `make bench`). The job is a JSON file; the answer, JSON on stdout.
//
//	node --no-liftoff --wasm-max-mem-pages=16384 [--no-wasm-lazy-compilation] bench.mjs JOB.json
//
// Jobs:
//   {"mode": "requests", "rounds", "requests", "warmup", "cases": [{"name", "wasm", "config",
//    "keys", "headers"}]}: interleaved rounds; in each round every case runs in a fresh proxy of
//    one VM: warm-up, then `requests` timed requests (wall and CPU ns per request), then as many
//    again under V8's sampling profiler, which splits the time between the guest (samples in
//    wasm functions: the time inside exported calls minus the time in imports) and the host.
//    Timing every call instead would not do: reading a clock costs 0.1 to 0.7 µs here, as much as
//    a callback.
//   {"mode": "memory", "case", "requests", "keys"}: the VM's linear memory after the requests.
//   {"mode": "compile", "wasm", "config"}: milliseconds (wall and CPU) of new WebAssembly.Module
//    (eager when node runs with --no-wasm-lazy-compilation), and until the canary VM is
//    configured.
import fs from 'node:fs';
import inspector from 'node:inspector';
import { performance } from 'node:perf_hooks';
import { Proxy, checkFlags } from './host.mjs';

checkFlags();
const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const modules = new Map();
const moduleOf = (path) => {
  if (!modules.has(path)) modules.set(path, new WebAssembly.Module(fs.readFileSync(path)));
  return modules.get(path);
};

// sources are the client addresses a case rotates over, as e2e's BenchmarkRequest has them.
function sources(n) {
  return Array.from({ length: n }, (_, i) => `10.0.${(i >> 8) & 255}.${i & 255}:1234`);
}

function proxyFor(c) {
  return new Proxy({ module: moduleOf(c.wasm), pluginConfig: c.config, vms: 1, vmId: 'floodgate', rootId: 'floodgate' });
}

function drive(proxy, src, headers, n) {
  for (let i = 0; i < n; i++) proxy.send(src[i % src.length], headers);
  const f = proxy.failures();
  if (f.length > 0) throw new Error(f.join('; '));
}

// The in-process inspector answers synchronously.
const session = new inspector.Session();
session.connect();
function post(method, params) {
  let out;
  session.post(method, params, (err, res) => { if (err) throw err; out = res; });
  return out;
}
post('Profiler.enable');
post('Profiler.setSamplingInterval', { interval: 50 }); // µs

// profiled runs f under the sampling profiler and returns the µs spent in wasm functions (by
// function) and elsewhere.
function profiled(f) {
  post('Profiler.start');
  f();
  const { profile } = post('Profiler.stop');
  const nodes = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const byFunction = new Map();
  let guest = 0, host = 0;
  profile.samples.forEach((id, i) => {
    const frame = nodes.get(id), dt = profile.timeDeltas[i] ?? 0;
    if (frame.url.startsWith('wasm://')) {
      guest += dt;
      byFunction.set(frame.functionName, (byFunction.get(frame.functionName) ?? 0) + dt);
    } else {
      host += dt;
    }
  });
  return { guest, host, byFunction };
}

function requests() {
  const out = job.cases.map((c) => ({ name: c.name, rounds: [], guest_by_function: {} }));
  for (let r = 0; r < job.rounds; r++) {
    job.cases.forEach((c, i) => {
      const src = sources(c.keys);
      const plain = proxyFor(c);
      drive(plain, src, c.headers, job.warmup);
      const start = performance.now(), cpu = process.cpuUsage();
      drive(plain, src, c.headers, job.requests);
      const ns = ((performance.now() - start) * 1e6) / job.requests;
      const used = process.cpuUsage(cpu);
      const cpuNs = ((used.user + used.system) * 1e3) / job.requests;

      const sampled = proxyFor(c);
      drive(sampled, src, c.headers, job.warmup);
      const calls = [...sampled.importCalls.values()].reduce((a, b) => a + b, 0);
      const p = profiled(() => drive(sampled, src, c.headers, job.requests));
      const total = p.guest + p.host;
      out[i].rounds.push({
        ns,
        cpu_ns: cpuNs,
        // the guest's share of the profiled run, applied to the unprofiled CPU time
        guest_ns: (cpuNs * p.guest) / total,
        imports_per_request: ([...sampled.importCalls.values()].reduce((a, b) => a + b, 0) - calls) / job.requests,
        memory_bytes: plain.vms[0].memory.buffer.byteLength,
      });
      for (const [fn, us] of p.byFunction) {
        out[i].guest_by_function[fn] = (out[i].guest_by_function[fn] ?? 0) + (us * 1000) / job.requests / job.rounds;
      }
    });
  }
  return { cases: out };
}

function memory() {
  const c = job.case;
  const p = proxyFor(c);
  drive(p, sources(job.keys), c.headers, job.requests);
  return { memory_bytes: p.vms[0].memory.buffer.byteLength };
}

// compile reports wall and CPU milliseconds (CPU: every thread of the process, V8 compiles on
// background threads too; on a busy machine it is the steadier figure).
function compile() {
  const bytes = fs.readFileSync(job.wasm);
  const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e3; };
  const start = performance.now(), cpu0 = cpu();
  const module = new WebAssembly.Module(bytes);
  const compiled = performance.now(), cpu1 = cpu();
  new Proxy({ module, pluginConfig: job.config, vms: 0 }); // the canary: Envoy's first VM
  const configured = performance.now(), cpu2 = cpu();
  return { module_ms: compiled - start, module_cpu_ms: cpu1 - cpu0, first_vm_ms: configured - start, first_vm_cpu_ms: cpu2 - cpu0 };
}

const modes = { requests, memory, compile };
console.log(JSON.stringify(modes[job.mode]()));
