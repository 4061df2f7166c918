//go:build unix

package main

// mutant is one curated safety mutation: old, which must occur exactly once in file (relative to
// the module root), is replaced by new; then the tests matching run in pkgs must fail.
type mutant struct {
	name     string
	file     string
	old, new string
	pkgs     []string
	run      string
}

// mutants is the curated list: every safety mechanism broken on purpose, with the fast tests
// (unit and native plugin tiers; a real redis-server for the Lua scripts) that must catch it.
// Keep each entry's old text current when the code moves (TestCuratedMutantsApply checks it).
var mutants = []mutant{
	// Shared-data store (every worker of a proxy).
	{
		name: "store: UpdateSlot ignores the CAS",
		file: "store/store.go",
		old:  "err = s.sd.Set(skey, val, cas)\n\t\tif err == nil {\n\t\t\treturn nil\n",
		new:  "err = s.sd.Set(skey, val, 0*cas)\n\t\tif err == nil {\n\t\t\treturn nil\n",
		pkgs: []string{"./store"}, run: "TestUpdateSlot",
	},
	{
		name: "store: Update ignores the CAS",
		file: "store/store.go",
		old:  "err = s.sd.Set(skey, val, cas)\n\t\tif err == nil {\n\t\t\treturn info, nil\n",
		new:  "err = s.sd.Set(skey, val, 0*cas)\n\t\tif err == nil {\n\t\t\treturn info, nil\n",
		pkgs: []string{"./store"}, run: "TestUpdateIsExactUnderConcurrency|TestInsertRace",
	},
	// Algorithms.
	{
		name: "algorithm: absolute admits Q+1",
		file: "algorithm/decide.go",
		old:  "if used := r.sumA(); used+cost > r.c.Quota {",
		new:  "if used := r.sumA(); used+cost > r.c.Quota+1 {",
		pkgs: []string{"./algorithm"}, run: "TestAbsolute|TestQuotaIsExact",
	},
	// Hybrid backend.
	{
		name: "hybrid: applyAll applies an answer to an old flight",
		file: "plugin/sync.go",
		old:  "if ls.flight != sl.at {",
		new:  "if ls.flight != sl.at && false {",
		pkgs: []string{"./plugin"}, run: "TestHybrid",
	},
	{
		name: "hybrid: every VM takes the lead",
		file: "plugin/sync.go",
		old:  "if token != s.token && until > now {",
		new:  "if token != s.token && until > now && false {",
		pkgs: []string{"./plugin"}, run: "TestHybrid",
	},
	{
		name: "hybrid: a lease spends twice its reservation",
		file: "plugin/lease.go",
		old:  "case valid && l.spent+cost <= l.reserved:",
		new:  "case valid && l.spent+cost <= 2*l.reserved:",
		pkgs: []string{"./plugin"}, run: "TestDecideLease|TestLease",
	},
	// Responses.
	{
		name: "response: Retry-After rounded down",
		file: "plugin/answer.go",
		old:  "return (ms + 999) / 1000",
		new:  "return ms / 1000",
		pkgs: []string{"./plugin"}, run: "TestRetryAfterRoundsUp",
	},
	{
		name: "response: Retry-After header dropped",
		file: "plugin/limiter.go",
		old:  `headers = append(headers, [2]string{"retry-after", strconv.FormatInt(retry, 10)})`,
		new:  `_ = retry`,
		pkgs: []string{"./plugin"}, run: "TestScenariosNative",
	},
	// Redis backend: breaker, guard, failure mode, all or nothing.
	{
		name: "breaker: opens one failure after its threshold",
		file: "plugin/breaker.go",
		old:  "if s.failures >= b.failures {",
		new:  "if s.failures > b.failures {",
		pkgs: []string{"./plugin"}, run: "TestBreaker",
	},
	{
		name: "breaker: never reaches its threshold",
		file: "plugin/breaker.go",
		old:  "\t\t\ts.failures++\n",
		new:  "\t\t\ts.failures += 0\n",
		pkgs: []string{"./plugin"}, run: "TestBreaker",
	},
	{
		name: "breaker: half open lets every call through",
		file: "plugin/breaker.go",
		old:  "s.probed = now + b.probeTimeoutMs",
		new:  "s.probed = 0",
		pkgs: []string{"./plugin"}, run: "TestBreaker",
	},
	{
		name: "redis: the local count (guard) never rejects",
		file: "plugin/backend_redis.go",
		old:  "if gerr == nil && !guard.Allowed {",
		new:  "if gerr == nil && !guard.Allowed && false {",
		pkgs: []string{"./plugin"}, run: "TestRedis",
	},
	{
		name: "redis: failure mode local acts as open",
		file: "plugin/failure.go",
		old:  "case config.FailLocal:",
		new:  `case "never":`,
		pkgs: []string{"./plugin"}, run: "TestRedis",
	},
	{
		name: "all or nothing: nothing given back on a rejection",
		file: "plugin/undo.go",
		old:  "if len(ev.admitted) == 0 {",
		new:  "if len(ev.admitted) >= 0 {",
		pkgs: []string{"./plugin"}, run: "TestScenariosNative",
	},
	// Lua scripts, against a real redis-server.
	{
		name: "lua decide: never writes the state",
		file: "redislimit/decide.lua",
		old:  "if changed then save() end",
		new:  "if false then save() end",
		pkgs: []string{"./redislimit"}, run: "TestDifferential",
	},
	{
		name: "lua decide: absolute ignores the cost (admits Q+1)",
		file: "redislimit/decide.lua",
		old:  "if l.sa + c > l.quota then",
		new:  "if l.sa > l.quota then",
		pkgs: []string{"./redislimit"}, run: "TestDifferential",
	},
	{
		name: "lua decide: a lease's spent units are not counted",
		file: "redislimit/decide.lua",
		old:  "l.ta, l.sa = clamp(l.ta + used), clamp(l.sa + used)",
		new:  "l.ta, l.sa = clamp(l.ta), clamp(l.sa)",
		pkgs: []string{"./redislimit"}, run: "TestLease|TestDifferential",
	},
	{
		name: "lua decide: a refund gives nothing back",
		file: "redislimit/decide.lua",
		old:  "        release(l, at, cost)\n",
		new:  "        -- release(l, at, cost)\n",
		pkgs: []string{"./redislimit"}, run: "TestDifferential",
	},
	{
		name: "lua decide: suppressed sheds at the soft quota (< for <=)",
		file: "redislimit/decide.lua",
		old:  "if acc + cost <= l.quota then",
		new:  "if acc + cost < l.quota then",
		pkgs: []string{"./redislimit"}, run: "TestDifferential",
	},
	{
		name: "lua meter: never writes the state",
		file: "redislimit/meter.lua",
		old:  "if v then redis.call('SET', KEYS[1], v .. blk,",
		new:  "if false then redis.call('SET', KEYS[1], v .. blk,",
		pkgs: []string{"./redislimit"}, run: "TestDifferential",
	},
	{
		name: "lua meter: admits one unit over the burst (> T for > 0)",
		file: "redislimit/meter.lua",
		old:  "    if over > 0 then\n      local ms",
		new:  "    if over > T then\n      local ms",
		pkgs: []string{"./redislimit"}, run: "TestDifferential",
	},
	{
		name: "lua meter: a cost of exactly the burst refused (>= for >)",
		file: "redislimit/meter.lua",
		old:  "  if cost > B then\n",
		new:  "  if cost >= B then\n",
		pkgs: []string{"./redislimit"}, run: "TestCostAtTheQuotaBoundary|TestDifferential",
	},
}
