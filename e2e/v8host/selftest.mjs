// Tests of the V8 host itself, on the purpose-built guests of e2e/testdata/guests (so that a host
// bug cannot hide a plugin bug), the same behaviours e2e/envoyhost/host_test.go checks on wazero.
// e2e's TestV8HostBehavesLikeEnvoy runs it:
//
//	node --no-liftoff --wasm-max-mem-pages=16384 e2e/v8host/selftest.mjs GUEST_DIR PLUGIN.wasm
//
// GUEST_DIR holds probe.wasm, badimport.wasm and badalloc.wasm. It prints one line per test and
// exits 1 when one fails.
import fs from 'node:fs';
import path from 'node:path';
import { Envoy, SharedData, checkFlags } from './host.mjs';

checkFlags();
const [dir, plugin] = process.argv.slice(2);
const mod = (file) => new WebAssembly.Module(fs.readFileSync(file));
const guest = (name) => mod(path.join(dir, `${name}.wasm`));

function assert(cond, msg) { if (!cond) throw new Error(msg); }

function throws(f, want) {
  try { f(); } catch (e) {
    assert(e.message.includes(want), `error ${JSON.stringify(e.message)} does not say ${JSON.stringify(want)}`);
    return;
  }
  throw new Error(`no error, want one saying ${JSON.stringify(want)}`);
}

const req = (action) => [[':method', 'GET'], [':path', '/'], [':authority', 'test'], ['x-action', action]];

const tests = {
  'lifecycle order'() {
    const p = new Envoy({ module: guest('probe'), vms: 1, record: true });
    const a = p.send('10.1.2.3:4567', req('none'));
    assert(a.headers.some(([k, v]) => k === 'x-probe-response' && v === 'seen'), `response headers ${JSON.stringify(a.headers)}`);
    const want = ['_initialize[]', 'proxy_on_context_create[1 0]', 'proxy_on_vm_start[1 0]', 'proxy_on_configure[1 0]',
      'proxy_on_context_create[2 1]', 'proxy_on_request_headers[2 4 1]', 'proxy_on_response_headers[2 1 1]',
      'proxy_on_log[2]', 'proxy_on_done[2]', 'proxy_on_delete[2]'];
    assert(p.vms[0].calls.join('\n') === want.join('\n'), `calls:\n${p.vms[0].calls.join('\n')}`);
  },
  'configure false is refused'() {
    throws(() => new Envoy({ module: guest('probe'), pluginConfig: 'reject' }), 'rejected on purpose');
  },
  'a missing import fails the load'() {
    throws(() => new Envoy({ module: guest('badimport') }), 'env.proxy_get_configuration');
  },
  'the allocator restriction traps'() {
    throws(() => new Envoy({ module: guest('badalloc'), pluginConfig: 'x' }), 'restricted_callback: env.proxy_get_shared_data');
  },
  'shared data semantics'() {
    const s = new SharedData();
    assert(s.get('k') === undefined, 'a missing key is found');
    assert(s.set('k', new Uint8Array([1]), 77), 'a missing key is inserted whatever the CAS');
    const { cas } = s.get('k');
    assert(!s.set('k', new Uint8Array([2]), cas + 1), 'a wrong CAS succeeds');
    assert(s.set('k', new Uint8Array([2]), cas), 'the right CAS fails');
    assert(s.get('k').cas !== cas, 'a set keeps the CAS');
    assert(s.set('k', new Uint8Array([3]), 0), 'CAS 0 does not overwrite');
  },
  'CAS counting across VMs and proxies sharing one store'() {
    const shared = new SharedData();
    const proxies = [1, 2].map(() => new Envoy({ module: guest('probe'), vms: 2, shared }));
    for (let i = 0; i < 200; i++) proxies[i % 2].send('10.1.2.3:4567', req('count'));
    const v = shared.get('count').value;
    const n = new DataView(v.buffer, v.byteOffset).getBigUint64(0, true);
    assert(n === 200n, `count ${n}, want 200`);
  },
  'ENOSYS: a guest that waits dies in poll_oneoff, as in Envoy'() {
    const p = new Envoy({ module: guest('probe'), vms: 1 });
    // The first sleeps may end while V8 compiles the runtime's scheduler lazily (1 ms goes by
    // before it looks at its timers): sleep until the runtime has to wait.
    for (let i = 0; i < 100 && p.failures().length === 0; i++) {
      try { p.send('10.1.2.3:4567', req('sleep')); } catch { /* the VM failed */ }
    }
    assert(p.importCalls.get('wasi_snapshot_preview1.poll_oneoff') > 0, 'poll_oneoff was not called');
    assert(p.failures().length === 1, 'the VM did not fail');
  },
  'local responses and properties'() {
    const p = new Envoy({ module: guest('probe'), vms: 1 });
    const local = p.send('10.1.2.3:4567', req('local'));
    assert(local.status === 429 && local.body === 'slow down', `local answer ${JSON.stringify(local)}`);
    const prop = p.send('10.9.9.9:1', req('property'));
    assert(prop.headers.some(([k, v]) => k === 'x-source' && v === '10.9.9.9:1'), `property answer ${JSON.stringify(prop)}`);
  },
  'the plugin is exact across workers and proxies sharing one store'() {
    const shared = new SharedData();
    const config = '{"policies":[{"name":"p","key":[{"type":"client_ip"}],"limits":[{"requests":"3/m"}]}]}';
    const module = mod(plugin);
    const proxies = [1, 2].map(() => new Envoy({ module, pluginConfig: config, vms: 2, shared, env: { GOGC: '1' } }));
    let ok = 0;
    for (let i = 0; i < 40; i++) if (proxies[i % 2].send('10.0.0.1:1', [[':method', 'GET'], [':path', '/'], [':authority', 'x']]).status === 200) ok++;
    assert(ok === 3, `admitted ${ok}, want 3`);
    const allowed = proxies.reduce((n, p) => n + p.metric('floodgate.p.allowed'), 0n);
    assert(allowed === 3n, `floodgate.p.allowed ${allowed} over both proxies, want 3`);
  },
};

let failed = 0;
for (const [name, t] of Object.entries(tests)) {
  try {
    t();
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.message}`);
  }
}
console.log(`V8 host tests: ${Object.keys(tests).length - failed} of ${Object.keys(tests).length} passed`);
process.exit(failed > 0 ? 1 : 0);
