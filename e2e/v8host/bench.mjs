// Measures plugins in V8 for the engine report (e2e/cmd/enginebench writes BENCHMARKS.md from
// it; run it through `make bench`). The job is a JSON file; the answer, JSON on stdout.
//
//	node --no-liftoff --wasm-max-mem-pages=16384 [--no-wasm-lazy-compilation] bench.mjs JOB.json
//
// Jobs:
//   {"mode": "requests", "rounds", "requests", "warmup", "cases": [{"name", "wasm", "config",
//    "keys", "headers", "env"}]}: interleaved rounds; in each round every case runs in a fresh proxy of
//    one VM: warm-up, then `requests` requests (wall and CPU ns per request); then as many in a
//    proxy that times every exported call and import (guest time: inside exports minus inside
//    imports, less the timing's own cost, see Timing in host.mjs; its share of that run, applied
//    to the first run's CPU time); then as many under V8's
//    sampling profiler, for where the guest's time goes by function (on a busy machine the
//    sampler misses samples: a rough picture, not a measure).
//   {"mode": "memory", "case", "requests", "keys"}: the VM's linear memory after the requests, and
//    the CPU ns they took each.
//   {"mode": "compile", "wasm", "config"}: milliseconds (wall and CPU) of new WebAssembly.Module
//    (eager when node runs with --no-wasm-lazy-compilation), and until the canary VM is
//    configured.
import fs from 'node:fs';
import inspector from 'node:inspector';
import { performance } from 'node:perf_hooks';
import { Envoy, Timing, checkFlags } from './host.mjs';

checkFlags();
const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const modules = new Map();
const moduleOf = (path) => {
  if (!modules.has(path)) modules.set(path, new WebAssembly.Module(fs.readFileSync(path)));
  return modules.get(path);
};

// sources are the client addresses a case rotates over, as e2e/cmd/enginebench has them.
function sources(n) {
  return Array.from({ length: n }, (_, i) => `10.0.${(i >> 8) & 255}.${i & 255}:1234`);
}

function proxyFor(c, timing = false) {
  return new Envoy({ module: moduleOf(c.wasm), pluginConfig: c.config, vms: 1, vmId: 'floodgate', rootId: 'floodgate', env: c.env, timing });
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
// profiled runs f under the sampling profiler and returns the share of the samples each wasm
// function had.
function profiled(f) {
  post('Profiler.start');
  f();
  const { profile } = post('Profiler.stop');
  const nodes = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const byFunction = new Map();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const frame = nodes.get(id), dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    if (frame.url.startsWith('wasm://')) byFunction.set(frame.functionName, (byFunction.get(frame.functionName) ?? 0) + dt);
  });
  for (const [fn, dt] of byFunction) byFunction.set(fn, dt / total);
  return byFunction;
}

function requests() {
  post('Profiler.enable');
  post('Profiler.setSamplingInterval', { interval: 50 }); // µs
  const calibration = new Timing();
  calibration.calibrate();
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

      const timed = proxyFor(c, true);
      drive(timed, src, c.headers, job.warmup);
      const t = timed.timing;
      t.reset();
      t.overhead = calibration.overhead;
      const timedStart = performance.now();
      drive(timed, src, c.headers, job.requests);
      // The guest's share of the timed run's wall time, applied to the plain run's CPU time: on a
      // busy machine the process is also preempted inside the guest, about as much as elsewhere.
      const guestShare = t.guestMs() / (performance.now() - timedStart);

      const sampled = proxyFor(c);
      drive(sampled, src, c.headers, job.warmup);
      const shares = profiled(() => drive(sampled, src, c.headers, job.requests));
      const guestNs = guestShare * cpuNs;
      out[i].rounds.push({
        ns,
        cpu_ns: cpuNs,
        guest_ns: guestNs,
        imports_per_request: t.imports / job.requests,
        memory_bytes: plain.vms[0].memory.buffer.byteLength,
      });
      // Each function's share of the samples, as ns of this round's CPU time per request.
      for (const [fn, share] of shares) {
        out[i].guest_by_function[fn] = (out[i].guest_by_function[fn] ?? 0) + (share * cpuNs) / job.rounds;
      }
    });
  }
  return { cases: out, timing_overhead_ns: { call: calibration.overhead.call * 1e6, import: calibration.overhead.import * 1e6 } };
}

function memory() {
  const c = job.case;
  const p = proxyFor(c);
  const cpu = process.cpuUsage();
  drive(p, sources(job.keys), c.headers, job.requests);
  const used = process.cpuUsage(cpu);
  return { memory_bytes: p.vms[0].memory.buffer.byteLength, cpu_ns: ((used.user + used.system) * 1e3) / job.requests };
}

// compile reports wall and CPU milliseconds (CPU: every thread of the process, V8 compiles on
// background threads too; on a busy machine it is the steadier figure).
function compile() {
  const bytes = fs.readFileSync(job.wasm);
  const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e3; };
  const start = performance.now(), cpu0 = cpu();
  const module = new WebAssembly.Module(bytes);
  const compiled = performance.now(), cpu1 = cpu();
  new Envoy({ module, pluginConfig: job.config, vms: 0 }); // the canary: Envoy's first VM
  const configured = performance.now(), cpu2 = cpu();
  return { module_ms: compiled - start, module_cpu_ms: cpu1 - cpu0, first_vm_ms: configured - start, first_vm_cpu_ms: cpu2 - cpu0 };
}

const modes = { requests, memory, compile };
console.log(JSON.stringify(modes[job.mode]()));
