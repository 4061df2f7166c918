// Replays the behaviour scenarios (internal/scenarios, exported as
// internal/scenarios/testdata/scenarios.json) against plugin.wasm in V8, each in a fresh proxy of
// two worker VMs, like e2e's TestScenariosWasm on wazero. e2e's TestScenariosV8 runs it:
//
//	node --no-liftoff --wasm-max-mem-pages=16384 e2e/v8host/scenarios.mjs SCENARIOS.json PLUGIN.wasm
//
// It prints one line per scenario and exits 1 when one fails.
import fs from 'node:fs';
import { Clock, Envoy, checkFlags } from './host.mjs';

// A clock that stands still: Retry-After and reset times do not depend on how long the steps
// take (a second elapsed on a busy machine answered 59 for 60).
class StillClock extends Clock {
  constructor() {
    super();
    this.atNs = BigInt(Date.now()) * 1000000n;
  }
  nowNs() { return this.atNs + this.offsetNs; }
}

checkFlags();
const [file, wasm] = process.argv.slice(2);
if (!file || !wasm) {
  console.error('usage: scenarios.mjs SCENARIOS.json PLUGIN.wasm');
  process.exit(2);
}
const all = JSON.parse(fs.readFileSync(file, 'utf8'));
const module = new WebAssembly.Module(fs.readFileSync(wasm));

// A field this replayer does not know is a scenario feature it would silently skip: refuse it.
function fields(obj, known, what) {
  const extra = Object.keys(obj).filter((k) => !known.includes(k));
  if (extra.length > 0) throw new Error(`${what}: unknown fields ${extra.join(', ')} (teach e2e/v8host/scenarios.mjs)`);
}

function header(headers, name) {
  const kv = headers.find(([k]) => k.toLowerCase() === name);
  return kv ? kv[1] : '';
}

function run(sc) {
  fields(sc, ['name', 'config', 'steps', 'metrics'], 'scenario');
  const proxy = new Envoy({ module, pluginConfig: sc.config, vms: 2, vmId: 'floodgate', rootId: 'floodgate', clock: new StillClock() });
  sc.steps.forEach((st, i) => {
    fields(st, ['source', 'headers', 'repeat', 'upstream', 'status', 'want', 'body'], `step ${i}`);
    for (let r = 0; r < st.repeat; r++) {
      const where = `step ${i} (repeat ${r})`;
      const a = proxy.send(st.source, st.headers, st.upstream);
      const all = JSON.stringify(a.headers);
      if (a.status !== st.status) throw new Error(`${where}: status ${a.status}, want ${st.status} (headers ${all}, body ${JSON.stringify(a.body)})`);
      if (st.body !== '' && a.body !== st.body) throw new Error(`${where}: body ${JSON.stringify(a.body)}, want ${JSON.stringify(st.body)}`);
      for (const [k, want] of st.want) {
        const got = header(a.headers, k);
        if (got !== want) throw new Error(`${where}: ${k} = ${JSON.stringify(got)}, want ${JSON.stringify(want)} (all: ${all})`);
      }
    }
  });
  for (const m of sc.metrics) {
    const got = proxy.metric(m.name);
    if (got !== BigInt(m.value)) throw new Error(`metric ${m.name} = ${got}, want ${m.value}`);
  }
  const failures = proxy.failures();
  if (failures.length > 0) throw new Error(`VM failures: ${failures.join('; ')}`);
  if (proxy.importCalls.get('wasi_snapshot_preview1.poll_oneoff') > 0) throw new Error('poll_oneoff was called');
}

let failed = 0;
for (const sc of all) {
  try {
    run(sc);
    console.log(`ok   ${sc.name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${sc.name}: ${e.message}`);
  }
}
console.log(`scenarios in V8: ${all.length - failed} of ${all.length} passed`);
process.exit(failed > 0 ? 1 : 0);
