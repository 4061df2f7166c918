// A proxy-wasm host for Node.js: runs plugin.wasm in V8, the engine Envoy embeds, the way
// e2e/envoyhost runs it on wazero. It imitates the same Envoy behaviour, written from the same
// facts (see e2e/envoyhost/host.go and PROXY_WASM_FACTS.md), and shares test vectors with the Go
// host, not code:
//   - Envoy's lifecycle: a canary VM whose proxy_on_configure decides whether the configuration is
//     accepted, then one VM per worker, each its own WebAssembly.Instance of one compiled module:
//     _initialize, proxy_on_context_create(root, 0), proxy_on_vm_start, proxy_on_configure; HTTP
//     contexts created lazily at the first headers, ended by proxy_on_log, proxy_on_done,
//     proxy_on_delete.
//   - one shared-data store per proxy with Envoy's compare-and-swap semantics and no delete,
//     usable by several proxies of one process; metrics summed across VMs by name; stream
//     properties; local responses.
//   - exactly the WASI functions of Envoy 1.33 (proxy-wasm-cpp-host src/exports.cc, as in
//     e2e/envoyhost/wasi.go): poll_oneoff and fd_fdstat_set_flags answer ENOSYS; a module that
//     imports anything else is refused, as Envoy refuses to link it.
//   - the restriction Envoy's V8 puts on the guest while the host is inside the guest's
//     allocator: any import but proxy_log, fd_write and clock_time_get traps.
// Run it with Envoy's V8 flags (envoyV8Flags below); http calls answer BadArgument (no cluster)
// and ticks are recorded, not fired.
import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';

// envoyV8Flags are the V8 settings proxy-wasm-cpp-host applies (src/v8/v8.cc, engine():
// v8_flags.liftoff = false, i.e. TurboFan only, and wasm_max_mem_pages =
// PROXY_WASM_HOST_MAX_WASM_MEMORY_SIZE_BYTES (1 GiB) / 64 KiB). Lazy compilation is V8's default.
export const envoyV8Flags = ['--no-liftoff', '--wasm-max-mem-pages=16384'];

// checkFlags throws unless node runs with Envoy's flags.
export function checkFlags() {
  const missing = envoyV8Flags.filter((f) => !process.execArgv.includes(f));
  if (missing.length > 0) throw new Error(`run node with Envoy's V8 flags: missing ${missing.join(' ')}`);
}

// Proxy-wasm status codes and WASI errno values.
const OK = 0, NOT_FOUND = 1, BAD_ARGUMENT = 2, INVALID_MEMORY = 6, CAS_MISMATCH = 8, UNIMPLEMENTED = 12;
const ESUCCESS = 0, EBADF = 8, EFAULT = 21, ENOSYS = 52, ENOTSUP = 58;
const ROOT_ID = 1; // Envoy numbers contexts per VM from 1: the root context comes first.

// SharedData is one proxy's store for one vm_id: get gives the value and its CAS; set with CAS 0
// overwrites; a missing key is inserted whatever the CAS; a non-zero CAS that does not match
// fails; every set takes a new CAS from one counter (0 skipped); nothing is ever deleted.
export class SharedData {
  constructor() { this.items = new Map(); this.cas = 0; }
  get(key) { return this.items.get(key); }
  set(key, value, cas) {
    const it = this.items.get(key);
    if (it && cas !== 0 && cas !== it.cas) return false;
    this.cas = (this.cas + 1) >>> 0 || 1;
    this.items.set(key, { value, cas: this.cas });
    return true;
  }
}

// A wall clock the caller can move forward: the host's only time source, read by
// proxy_get_current_time_nanoseconds and WASI clock_time_get (realtime).
export class Clock {
  constructor() { this.offsetNs = 0n; }
  nowNs() { return BigInt(Date.now()) * 1000000n + this.offsetNs; }
  advance(ms) { this.offsetNs += BigInt(ms) * 1000000n; }
}

const enc = new TextEncoder(), dec = new TextDecoder();

// encodeMap serialises header pairs the way proxy-wasm does: u32 count, (u32 key len, u32 value
// len) per pair, then each key and value followed by NUL, little-endian.
function encodeMap(pairs) {
  const kv = pairs.map(([k, v]) => [enc.encode(k), enc.encode(v)]);
  let size = 4 + 8 * kv.length;
  for (const [k, v] of kv) size += k.length + v.length + 2;
  const out = new Uint8Array(size), dv = new DataView(out.buffer);
  dv.setUint32(0, kv.length, true);
  let p = 4 + 8 * kv.length;
  kv.forEach(([k, v], i) => {
    dv.setUint32(4 + 8 * i, k.length, true);
    dv.setUint32(8 + 8 * i, v.length, true);
    out.set(k, p); p += k.length + 1;
    out.set(v, p); p += v.length + 1;
  });
  return out;
}

function decodeMap(b) {
  if (b.length < 4) return null;
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  const n = dv.getUint32(0, true);
  let p = 4 + 8 * n;
  if (p > b.length) return null;
  const out = [];
  for (let i = 0; i < n; i++) {
    const kl = dv.getUint32(4 + 8 * i, true), vl = dv.getUint32(8 + 8 * i, true);
    if (p + kl + vl + 2 > b.length) return null;
    const k = dec.decode(b.subarray(p, p + kl)); p += kl + 1;
    const v = dec.decode(b.subarray(p, p + vl)); p += vl + 1;
    out.push([k, v]);
  }
  return out;
}

// The imports Envoy lets the guest call while the host is inside its allocator.
const allowedInAlloc = new Set(['env.proxy_log', 'wasi_snapshot_preview1.fd_write', 'wasi_snapshot_preview1.clock_time_get']);

class Trap extends Error {}

// Envoy is one proxy (an Envoy process) running one plugin on several worker VMs.
export class Envoy {
  // opts: module (WebAssembly.Module), pluginConfig and vmConfig (strings), vms (default 2),
  // vmId, rootId, pluginName, env (object), shared (SharedData, to share it between proxies),
  // clock (Clock), record (keep each VM's calls), timing (time every exported call, import and
  // allocation: see Timing).
  constructor(opts) {
    this.opts = opts;
    this.shared = opts.shared ?? new SharedData();
    this.clock = opts.clock ?? new Clock();
    this.metrics = new Map(); // name -> {kind, value}
    this.logs = [];
    this.importCalls = new Map(); // "module.name" -> calls, over every VM
    this.timing = opts.timing ? new Timing() : null;
    checkImports(opts.module);
    const canary = new VM(this, -1);
    const ok = canary.start();
    if (!ok) {
      const lines = this.logs.filter((l) => l.vm === -1 && l.level >= 5).map((l) => l.msg);
      throw new Error(`plugin configuration rejected: ${lines.join('; ')}`);
    }
    canary.close();
    this.vms = [];
    for (let i = 0; i < (opts.vms ?? 2); i++) {
      const vm = new VM(this, i);
      if (!vm.start()) throw new Error(`vm ${i}: configure failed`);
      this.vms.push(vm);
    }
    this.next = 0;
  }

  log(vm, level, msg) { if (this.logs.length < 100000) this.logs.push({ vm, level, msg }); }

  // metric returns a counter or gauge by name (Envoy: wasmcustom.<name>), 0 when undefined.
  metric(name) { return this.metrics.get(name)?.value ?? 0n; }

  // failures lists the errors of VMs that trapped.
  failures() { return this.vms.filter((v) => v.failed).map((v) => `vm ${v.index}: ${v.failed.message}`); }

  // send runs one request on the next worker VM (round robin): request headers, then, when it
  // continues, response headers {":status": "200"} from the upstream, then log, done, delete.
  // send runs one request; one that reaches the upstream is answered with status upstream.
  send(source, headers, upstream = 200) {
    const vm = this.vms[this.next++ % this.vms.length];
    const s = vm.stream({ 'source.address': source });
    try {
      const action = s.callback('proxy_on_request_headers', headers.length, 1, () => { s.req = lower(headers); });
      if (s.local) return { status: s.local.status, headers: s.local.headers, body: s.local.body };
      if (s.reset) throw new Error('the plugin closed the stream');
      if (action !== 0 && !s.continued) throw new Error('the plugin paused the request and never resumed it');
      s.continued = false;
      const resp = [[':status', String(upstream)]];
      const raction = s.callback('proxy_on_response_headers', resp.length, 1, () => { s.resp = resp; });
      if (raction !== 0 && !s.continued) throw new Error('the plugin paused the response and never resumed it');
      return { status: upstream, headers: s.resp, body: '' };
    } finally {
      s.done();
    }
  }
}

function lower(h) { return h.map(([k, v]) => [k.toLowerCase(), v]); }

function checkImports(module) {
  const missing = [];
  for (const imp of WebAssembly.Module.imports(module)) {
    const table = imp.module === 'env' ? envFunctions : imp.module === 'wasi_snapshot_preview1' ? wasiFunctions : null;
    if (imp.kind !== 'function' || !table || !(imp.name in table)) missing.push(`${imp.module}.${imp.name}`);
  }
  if (missing.length > 0) throw new Error(`the module imports functions Envoy does not provide: ${missing.join(', ')}`);
}

// VM is one instance of the module (one Envoy worker thread, or the canary when index is -1).
class VM {
  constructor(proxy, index) {
    this.proxy = proxy;
    this.index = index;
    this.nextId = ROOT_ID + 1;
    this.streams = new Map();
    this.metricIds = new Map();
    this.current = null; // the stream whose callback runs
    this.effective = null; // set by proxy_set_effective_context
    this.inAlloc = false;
    this.failed = null;
    this.calls = proxy.opts.record ? [] : null; // every export called, with its arguments
    const imports = { env: {}, wasi_snapshot_preview1: {} };
    for (const [mod, table] of [['env', envFunctions], ['wasi_snapshot_preview1', wasiFunctions]]) {
      for (const [name, fn] of Object.entries(table)) imports[mod][name] = this.wrap(`${mod}.${name}`, fn);
    }
    this.instance = new WebAssembly.Instance(proxy.opts.module, imports);
    this.exports = this.instance.exports;
    this.memory = this.exports.memory;
    // Like proxy-wasm-cpp-host: malloc first, then proxy_on_memory_allocate.
    this.alloc = this.exports.malloc ?? this.exports.proxy_on_memory_allocate;
    if (!this.alloc) throw new Error('the module exports no allocator (malloc or proxy_on_memory_allocate)');
    this.call('_initialize');
  }

  // wrap makes a host function an import: counted, checked against the allocator restriction,
  // and timed when the proxy times.
  wrap(full, fn) {
    const counts = this.proxy.importCalls, t = this.proxy.timing;
    counts.set(full, counts.get(full) ?? 0);
    const restricted = !allowedInAlloc.has(full);
    const plain = (...args) => {
      counts.set(full, counts.get(full) + 1);
      if (restricted && this.inAlloc) throw new Trap(`restricted_callback: ${full} called during the allocator call`);
      return fn(this, ...args);
    };
    return t ? t.import(plain) : plain;
  }

  // call runs an export; a trap (or any exception) fails the VM, as Envoy fails it.
  call(name, ...args) {
    if (this.failed) throw this.failed;
    const fn = this.exports[name];
    if (!fn) return 0;
    if (this.calls) this.calls.push(`${name}[${args.join(' ')}]`);
    const t = this.proxy.timing, start = t ? performance.now() : 0;
    try {
      const r = fn(...args);
      if (t) t.exported(start);
      return r === undefined ? 0 : Number(r);
    } catch (e) {
      this.failed = new Error(`${name}: ${e.message}`);
      this.proxy.log(this.index, 5, `vm failed: ${this.failed.message}`);
      throw this.failed;
    }
  }

  start() {
    this.call('proxy_on_context_create', ROOT_ID, 0);
    if (!this.call('proxy_on_vm_start', ROOT_ID, enc.encode(this.proxy.opts.vmConfig ?? '').length)) return false;
    return this.call('proxy_on_configure', ROOT_ID, enc.encode(this.proxy.opts.pluginConfig ?? '').length) !== 0;
  }

  close() {
    if (!this.failed && this.call('proxy_on_done', ROOT_ID)) this.call('proxy_on_delete', ROOT_ID);
  }

  stream(props) {
    const p = new Map();
    for (const [k, v] of Object.entries(props)) p.set(k.replaceAll('.', '\0'), enc.encode(v));
    return new Stream(this, p);
  }

  // bytes and view see the linear memory; a memory.grow replaces its buffer, so they are
  // renewed when it changed.
  bytes() { this.refresh(); return this.u8; }
  view() { this.refresh(); return this.dv; }
  refresh() {
    if (this.buf !== this.memory.buffer) {
      this.buf = this.memory.buffer;
      this.u8 = new Uint8Array(this.buf);
      this.dv = new DataView(this.buf);
    }
  }

  read(ptr, size) {
    const b = this.bytes();
    if (ptr + size > b.length) return null;
    return b.slice(ptr, ptr + size);
  }
  readString(ptr, size) {
    const b = this.bytes();
    if (ptr + size > b.length) return null;
    return dec.decode(b.subarray(ptr, ptr + size));
  }

  u32(ptr, val) {
    const dv = this.view();
    if (ptr + 4 > dv.byteLength) return INVALID_MEMORY;
    dv.setUint32(ptr, val, true);
    return OK;
  }
  u64(ptr, val) {
    const dv = this.view();
    if (ptr + 8 > dv.byteLength) return INVALID_MEMORY;
    dv.setBigUint64(ptr, BigInt.asUintN(64, val), true);
    return OK;
  }

  // allocate asks the guest for size bytes; meanwhile it may only call the allowed imports.
  allocate(size) {
    this.inAlloc = true;
    const t = this.proxy.timing, start = t ? performance.now() : 0;
    let p;
    try { p = this.alloc(size); } finally { this.inAlloc = false; }
    if (t) t.allocated(start);
    if (p === 0 && size > 0) throw new Trap(`allocate ${size} bytes: the guest returned no memory`);
    return p;
  }

  // writeOut copies data into a guest buffer it allocates and stores its address and size at
  // ptrPtr and sizePtr, as every proxy_get_* call returns values.
  writeOut(data, ptrPtr, sizePtr) {
    if (data.length === 0) return this.u32(ptrPtr, 0) || this.u32(sizePtr, 0);
    const p = this.allocate(data.length);
    const b = this.bytes();
    if (p + data.length > b.length) return INVALID_MEMORY;
    b.set(data, p);
    return this.u32(ptrPtr, p) || this.u32(sizePtr, data.length);
  }

  active() { return this.effective ?? this.current; }
}

// Timing measures guest time: the time inside exported calls and inside the allocator (called by
// the host during imports) minus the time inside imports. Reading the clock costs as much as a
// short callback here (0.1 µs and more), so the overhead of the measurement itself is measured on
// a module that does nothing (see calibrate) and taken off: guest() is the estimate.
export class Timing {
  constructor() { this.reset(); this.overhead = { call: 0, import: 0 }; }
  reset() { this.exportMs = 0; this.importMs = 0; this.allocMs = 0; this.exports = 0; this.imports = 0; this.allocs = 0; }
  exported(start) { this.exportMs += performance.now() - start; this.exports++; }
  allocated(start) { this.allocMs += performance.now() - start; this.allocs++; }
  import(f) {
    return (...args) => {
      const start = performance.now();
      try { return f(...args); } finally { this.importMs += performance.now() - start; this.imports++; }
    };
  }
  // guestMs is the time the guest itself ran, less the measurement's own cost.
  guestMs() {
    const raw = this.exportMs + this.allocMs - this.importMs;
    return raw - this.overhead.call * (this.exports + this.allocs) - this.overhead.import * this.imports;
  }

  // calibrate measures what timing adds per guest call and per import, on a module whose export
  // f(n) only calls the import g n times (hand-assembled: the loop costs about a nanosecond).
  calibrate(batches = 60, size = 4000) {
    const bytes = new Uint8Array([
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
      0x01, 0x08, 0x02, 0x60, 0x00, 0x00, 0x60, 0x01, 0x7f, 0x00, // types: ()->(), (i32)->()
      0x02, 0x09, 0x01, 0x03, 0x65, 0x6e, 0x76, 0x01, 0x67, 0x00, 0x00, // import env.g: type 0
      0x03, 0x02, 0x01, 0x01, // one function of type 1
      0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x01, // export "f": function 1
      0x0a, 0x17, 0x01, 0x15, 0x00, // code: one body of 21 bytes, no locals
      0x03, 0x40, 0x20, 0x00, 0x04, 0x40, // loop, if (n)
      0x10, 0x00, 0x20, 0x00, 0x41, 0x01, 0x6b, 0x21, 0x00, // call g; n = n - 1
      0x0c, 0x01, 0x0b, 0x0b, 0x0b, // br loop; end if; end loop; end
    ]);
    const f = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { g: this.import(() => 0) } }).exports.f;
    const per = (n) => {
      this.reset();
      for (let i = 0; i < size; i++) {
        const start = performance.now();
        f(n);
        this.exported(start);
      }
      return (this.exportMs - this.importMs) / size;
    };
    // Batches alternate between no import and 8 imports per call; medians resist the machine's
    // other work.
    const calls = [], imports = [];
    for (let b = 0; b < batches; b++) {
      const c = per(0);
      calls.push(c);
      imports.push((per(8) - c) / 8);
    }
    const median = (xs) => xs.sort((x, y) => x - y)[xs.length >> 1];
    this.overhead = { call: median(calls.slice(batches >> 2)), import: Math.max(0, median(imports.slice(batches >> 2))) };
    this.reset();
  }
}

// Stream is one HTTP request on one VM.
class Stream {
  constructor(vm, props) {
    this.vm = vm; this.props = props; this.id = 0;
    this.req = []; this.resp = []; this.local = null; this.continued = false; this.reset = false;
  }

  // callback runs a stream callback with this stream current; the context is created lazily,
  // before the first callback, as Envoy does at the first headers.
  callback(name, a, b, setup) {
    const vm = this.vm;
    setup();
    vm.current = this;
    try {
      if (this.id === 0) {
        this.id = vm.nextId++;
        vm.streams.set(this.id, this);
        vm.call('proxy_on_context_create', this.id, ROOT_ID);
      }
      return vm.call(name, this.id, a, b);
    } finally {
      vm.current = null; vm.effective = null;
    }
  }

  done() {
    const vm = this.vm;
    if (this.id === 0 || vm.failed) return;
    vm.current = this;
    try {
      vm.call('proxy_on_log', this.id);
      vm.call('proxy_on_done', this.id);
      vm.call('proxy_on_delete', this.id);
    } finally {
      vm.current = null; vm.effective = null;
      vm.streams.delete(this.id);
    }
  }
}

// headerMap returns the header list of map type for the running callback (an array, changed in
// place) and a setter that replaces it, or null.
function headerMap(vm, type) {
  const s = vm.active();
  if (!s) return null;
  switch (type) {
    case 0: return { list: s.req, set: (m) => { s.req = m; } };
    case 2: return { list: s.resp, set: (m) => { s.resp = m; } };
    case 1: case 3: return { list: [], set: () => {} }; // trailers: none in these requests
  }
  return null; // http-call maps: this host makes no http calls
}

function pluginBuffer(vm, type) {
  if (type === 6) return enc.encode(vm.proxy.opts.vmConfig ?? '');
  if (type === 7) return enc.encode(vm.proxy.opts.pluginConfig ?? '');
  return null;
}

// envFunctions are the env.proxy_* functions of ABI v0.2.1 (host functions take the VM first;
// i64 parameters arrive as BigInt).
const envFunctions = {
  proxy_log(vm, level, ptr, size) {
    const msg = vm.readString(ptr, size);
    if (msg === null) return INVALID_MEMORY;
    if (level > 6) return BAD_ARGUMENT;
    vm.proxy.log(vm.index, level, msg);
    return OK;
  },
  proxy_get_log_level: (vm, ptr) => vm.u32(ptr, 0),
  proxy_set_tick_period_milliseconds(vm, ms) { vm.tickMs = ms; return OK; },
  proxy_get_current_time_nanoseconds: (vm, ptr) => vm.u64(ptr, vm.proxy.clock.nowNs()),
  proxy_get_buffer_bytes(vm, type, start, max, ptrPtr, sizePtr) {
    const buf = pluginBuffer(vm, type);
    if (!buf) return NOT_FOUND;
    if (start > buf.length) return BAD_ARGUMENT;
    return vm.writeOut(buf.subarray(start, Math.min(buf.length, start + max)), ptrPtr, sizePtr);
  },
  proxy_set_buffer_bytes: () => NOT_FOUND,
  proxy_get_header_map_pairs(vm, type, ptrPtr, sizePtr) {
    const m = headerMap(vm, type);
    return m ? vm.writeOut(encodeMap(m.list), ptrPtr, sizePtr) : NOT_FOUND;
  },
  proxy_set_header_map_pairs(vm, type, ptr, size) {
    const m = headerMap(vm, type);
    if (!m) return NOT_FOUND;
    const raw = vm.read(ptr, size);
    if (!raw) return INVALID_MEMORY;
    const pairs = decodeMap(raw);
    if (!pairs) return BAD_ARGUMENT;
    m.set(pairs);
    return OK;
  },
  proxy_get_header_map_value(vm, type, kp, ks, ptrPtr, sizePtr) {
    const m = headerMap(vm, type);
    if (!m) return NOT_FOUND;
    const key = vm.readString(kp, ks);
    if (key === null) return INVALID_MEMORY;
    const lk = key.toLowerCase();
    const kv = m.list.find(([k]) => k === lk);
    return kv ? vm.writeOut(enc.encode(kv[1]), ptrPtr, sizePtr) : NOT_FOUND;
  },
  proxy_add_header_map_value(vm, type, kp, ks, vp, vs) {
    const m = headerMap(vm, type);
    if (!m) return NOT_FOUND;
    const key = vm.readString(kp, ks), val = vm.readString(vp, vs);
    if (key === null || val === null) return INVALID_MEMORY;
    m.list.push([key.toLowerCase(), val]);
    return OK;
  },
  proxy_replace_header_map_value(vm, type, kp, ks, vp, vs) {
    const m = headerMap(vm, type);
    if (!m) return NOT_FOUND;
    const key = vm.readString(kp, ks)?.toLowerCase(), val = vm.readString(vp, vs);
    if (key === undefined || val === null) return INVALID_MEMORY;
    m.set([...m.list.filter(([k]) => k !== key), [key, val]]);
    return OK;
  },
  proxy_remove_header_map_value(vm, type, kp, ks) {
    const m = headerMap(vm, type);
    if (!m) return NOT_FOUND;
    const key = vm.readString(kp, ks);
    if (key === null) return INVALID_MEMORY;
    m.set(m.list.filter(([k]) => k !== key.toLowerCase()));
    return OK;
  },
  proxy_get_property(vm, pp, ps, ptrPtr, sizePtr) {
    const path = vm.readString(pp, ps);
    if (path === null) return INVALID_MEMORY;
    const key = path.replace(/\0+$/, '');
    const o = vm.proxy.opts;
    const plugin = { plugin_name: o.pluginName, plugin_root_id: o.rootId, plugin_vm_id: o.vmId };
    if (key in plugin) return vm.writeOut(enc.encode(plugin[key] ?? ''), ptrPtr, sizePtr);
    const s = vm.active();
    if (!s) return NOT_FOUND; // stream properties do not exist in root callbacks
    const val = s.props.get(key);
    return val ? vm.writeOut(val, ptrPtr, sizePtr) : NOT_FOUND;
  },
  proxy_set_property: () => UNIMPLEMENTED,
  proxy_get_shared_data(vm, kp, ks, ptrPtr, sizePtr, casPtr) {
    const key = vm.readString(kp, ks);
    if (key === null) return INVALID_MEMORY;
    const it = vm.proxy.shared.get(key);
    if (!it) return NOT_FOUND;
    return vm.writeOut(it.value, ptrPtr, sizePtr) || vm.u32(casPtr, it.cas);
  },
  proxy_set_shared_data(vm, kp, ks, vp, vs, cas) {
    const key = vm.readString(kp, ks), val = vm.read(vp, vs);
    if (key === null || val === null) return INVALID_MEMORY;
    return vm.proxy.shared.set(key, val, cas >>> 0) ? OK : CAS_MISMATCH;
  },
  proxy_register_shared_queue: () => UNIMPLEMENTED,
  proxy_resolve_shared_queue: () => UNIMPLEMENTED,
  proxy_enqueue_shared_queue: () => UNIMPLEMENTED,
  proxy_dequeue_shared_queue: () => UNIMPLEMENTED,
  proxy_http_call: () => BAD_ARGUMENT, // Envoy: unknown cluster, at once and with no callback
  proxy_continue_stream(vm, type) {
    const s = vm.active();
    if (!s) return NOT_FOUND;
    if (type > 1) return BAD_ARGUMENT;
    s.continued = true;
    return OK;
  },
  proxy_close_stream(vm) {
    const s = vm.active();
    if (!s) return NOT_FOUND;
    s.reset = true;
    return OK;
  },
  proxy_send_local_response(vm, status, dp, ds, bp, bs, hp, hs) {
    const s = vm.active();
    if (!s) return NOT_FOUND;
    const body = vm.readString(bp, bs), raw = vm.read(hp, hs);
    if (body === null || raw === null) return INVALID_MEMORY;
    const headers = decodeMap(raw);
    if (!headers) return BAD_ARGUMENT;
    s.local = { status, headers: lower(headers), body };
    return OK;
  },
  proxy_define_metric(vm, kind, np, ns, idPtr) {
    if (kind > 2) return BAD_ARGUMENT;
    const name = vm.readString(np, ns);
    if (name === null) return INVALID_MEMORY;
    const metrics = vm.proxy.metrics;
    if (!metrics.has(name)) metrics.set(name, { kind, value: 0n });
    const id = ((vm.metricIds.size + 1) << 4) | kind;
    vm.metricIds.set(id, metrics.get(name));
    return vm.u32(idPtr, id);
  },
  proxy_increment_metric(vm, id, delta) {
    const m = vm.metricIds.get(id);
    if (!m) return NOT_FOUND;
    if (m.kind === 2) return BAD_ARGUMENT;
    m.value += delta;
    return OK;
  },
  proxy_record_metric(vm, id, value) {
    const m = vm.metricIds.get(id);
    if (!m) return NOT_FOUND;
    m.value = value;
    return OK;
  },
  proxy_get_metric(vm, id, ptr) {
    const m = vm.metricIds.get(id);
    return m ? vm.u64(ptr, m.value) : NOT_FOUND;
  },
  proxy_set_effective_context(vm, id) {
    if (id === ROOT_ID) { vm.effective = null; return OK; }
    const s = vm.streams.get(id);
    if (!s) return BAD_ARGUMENT;
    vm.effective = s;
    return OK;
  },
  proxy_done: () => OK,
  proxy_call_foreign_function: () => UNIMPLEMENTED,
};

const monotonicStart = process.hrtime.bigint();

// wasiFunctions is the Envoy 1.33 WASI profile, function for function as e2e/envoyhost/wasi.go.
const wasiFunctions = {
  fd_write(vm, fd, iovs, n, writtenPtr) {
    if (fd !== 1 && fd !== 2) return EBADF;
    const b = vm.bytes(), dv = vm.view();
    let msg = '', written = 0;
    for (let i = 0; i < n; i++) {
      if (iovs + 8 * i + 8 > b.length) return EFAULT;
      const p = dv.getUint32(iovs + 8 * i, true), size = dv.getUint32(iovs + 8 * i + 4, true);
      if (p + size > b.length) return EFAULT;
      msg += dec.decode(b.subarray(p, p + size));
      written += size;
    }
    if (written > 0) vm.proxy.log(vm.index, fd === 1 ? 2 : 4, msg.replace(/\n$/, ''));
    return vm.u32(writtenPtr, written) === OK ? ESUCCESS : EFAULT;
  },
  fd_read: () => ENOSYS,
  fd_seek: () => ESUCCESS,
  fd_close: () => ESUCCESS,
  fd_fdstat_get(vm, fd, ptr) {
    if (fd !== 1 && fd !== 2) return EBADF;
    const stat = new Uint8Array(24);
    stat[8] = 64; // fs_rights_base: FD_WRITE
    const b = vm.bytes();
    if (ptr + 24 > b.length) return EFAULT;
    b.set(stat, ptr);
    return ESUCCESS;
  },
  fd_fdstat_set_flags: () => ENOSYS,
  fd_prestat_get: () => EBADF,
  fd_prestat_dir_name: () => ENOSYS,
  path_open: () => ENOSYS,
  environ_get(vm, arr, buf) {
    for (const e of environ(vm)) {
      const b = enc.encode(e + '\0');
      if (vm.u32(arr, buf) !== OK || buf + b.length > vm.memory.buffer.byteLength) return EFAULT;
      vm.bytes().set(b, buf);
      arr += 4; buf += b.length;
    }
    return ESUCCESS;
  },
  environ_sizes_get(vm, countPtr, sizePtr) {
    const env = environ(vm);
    const size = env.reduce((n, e) => n + enc.encode(e).length + 1, 0);
    return vm.u32(countPtr, env.length) || vm.u32(sizePtr, size) ? EFAULT : ESUCCESS;
  },
  args_get: () => ESUCCESS,
  args_sizes_get: (vm, countPtr, sizePtr) => (vm.u32(countPtr, 0) || vm.u32(sizePtr, 0) ? EFAULT : ESUCCESS),
  clock_time_get(vm, id, _precision, ptr) {
    let t;
    if (id === 0) t = vm.proxy.clock.nowNs();
    else if (id === 1) t = process.hrtime.bigint() - monotonicStart;
    else return ENOTSUP;
    return vm.u64(ptr, t) === OK ? ESUCCESS : EFAULT;
  },
  random_get(vm, ptr, size) {
    const b = vm.bytes();
    if (ptr + size > b.length) return EFAULT;
    randomFillSync(b, ptr, size);
    return ESUCCESS;
  },
  proc_exit() { throw new Trap('proc_exit called'); }, // cpp-host reports an error and fails the VM
  sched_yield: () => ESUCCESS,
  poll_oneoff: () => ENOSYS,
};

function environ(vm) {
  return Object.entries(vm.proxy.opts.env ?? {}).map(([k, v]) => `${k}=${v}`).sort();
}
