package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// machine describes where and when the run happened.
type machine struct {
	date, cpu, memory, load, goVersion, redis, redisRate, rateLimit string
	duration                                                        time.Duration
}

func describeMachine(ctx context.Context, rdb *redis.Client) (machine, error) {
	m := machine{date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), goVersion: runtime.Version(),
		cpu: fmt.Sprintf("%d cores", runtime.NumCPU()), memory: "?", redisRate: "?", rateLimit: "?"}
	if model := procField("/proc/cpuinfo", "model name"); model != "" {
		m.cpu += " (" + model + ")"
	}
	if mem := procField("/proc/meminfo", "MemTotal"); mem != "" {
		var kb int64
		fmt.Sscan(mem, &kb)
		m.memory = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
	}
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return m, err
	}
	m.redis = "redis-server " + infoField(info, "redis_version")
	// The versions this module builds with (ratelimit is only a tool of the module, so it is
	// not in this binary's build information).
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", "github.com/go-redis/redis_rate/v10", "github.com/envoyproxy/ratelimit").Output()
	if err != nil {
		return m, fmt.Errorf("go list -m: %w", err)
	}
	if v := strings.Fields(string(out)); len(v) == 2 {
		m.redisRate, m.rateLimit = v[0], v[1]
	}
	return m, nil
}

// loadAverage returns the 1, 5 and 15 minute load averages of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// procField returns the value of the first "name: value" line of a /proc file.
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return "?"
}

// medianOf returns the median over rounds of one figure of a cell's samples.
func medianOf[S any](samples []S, f func(S) float64) float64 {
	v := make([]float64, len(samples))
	for i, s := range samples {
		v[i] = f(s)
	}
	return median(v)
}

func cpuOf(s costSample) float64           { return s.cpuUs }
func bytesOf(s costSample) float64         { return s.bytes }
func admittedOf(s costSample) float64      { return s.admitted }
func decisionsOf(s costSample) float64     { return s.decisions }
func keyLenOf(s costSample) float64        { return s.keyLen }
func clientCPUOf(s latencySample) float64  { return s.clientCPU }
func serviceCPUOf(s latencySample) float64 { return s.serviceCPU }
func redisCPUOf(s latencySample) float64   { return s.redisCPU }
func p50Of(s latencySample) float64        { return float64(s.p50) }
func p99Of(s latencySample) float64        { return float64(s.p99) }
func perSecOf(s latencySample) float64     { return s.perSec }

// writeReport writes the markdown tables.
func writeReport(w io.Writer, o options, m machine, cost map[costKey][]costSample, lat map[latencyKey][]latencySample) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## Redis: floodgate against redis_rate and envoyproxy/ratelimit (`make bench-redis`)\n\n")
	p("%s, %s, %s, Go %s, %s, go-redis/redis_rate %s, envoyproxy/ratelimit %s; load average at the end %s. "+
		"Command: `%s` (%s). Ratios are from this one run; nothing here is asserted by tests.\n\n",
		m.date, m.cpu, m.memory, strings.TrimPrefix(m.goVersion, "go"), m.redis, m.redisRate, m.rateLimit, m.load, o.command, m.duration.Round(time.Second))

	approaches := allApproaches()
	base := redisRateApproach.name
	p("### Redis CPU per decision\n\n")
	p("µs of `used_cpu_user + used_cpu_sys` (INFO cpu) per decision, median of %d interleaved rounds, "+
		"and the ratio to redis_rate. Limit 100 per window; each run starts on a flushed Redis, takes up to "+
		"%d clients (one key each) %d at a time for %s, and each client makes its attempts in a row: 100 "+
		"(all admitted) or 200 (half rejected). floodgate's sliding windows (absolute, suppressed) get "+
		"a clock pinned in the script's arguments that spreads a client's attempts evenly over its window, "+
		"as traffic spreads (a sliding window keeps a record per live bucket); its other strategies read "+
		"Redis TIME as in production, as redis_rate's script does.\n\n",
		o.cost.rounds, o.cost.clients, o.cost.workers, o.cost.cellTime)
	costTable(w, approaches, cost, base, cpuOf, "%.1f")
	p("\n### Bytes per key\n\n")
	p("`MEMORY USAGE` of the first %d clients' keys right after their last attempt (key names as each "+
		"approach makes them: floodgate's `{prefix:policy:hash}`, redis_rate's `rate:` + key, ratelimit's "+
		"`domain_key_value_windowstart`), median over keys and rounds, and the ratio to redis_rate. "+
		"In the all-admitted runs a floodgate key holds 100 requests spread over its window.\n\n", o.cost.sampled)
	costTable(w, approaches, cost, base, bytesOf, "%.0f")
	p("\nKey names: ")
	for i, a := range approaches {
		if i > 0 {
			p(", ")
		}
		p("%s %.0f bytes", a.name, medianOf(cost[costKey{a.name, windows[0].name, loads[0].name}], keyLenOf))
	}
	p(" (part of every figure above).\n")
	p("\n### Admitted share and decisions per run (medians)\n\n")
	p("| approach |")
	for _, l := range loads {
		for _, win := range windows {
			p(" %s, %s |", l.name, win.name)
		}
	}
	p("\n| --- |%s\n", strings.Repeat(" ---: |", len(loads)*len(windows)))
	for _, a := range approaches {
		p("| %s |", a.name)
		for _, l := range loads {
			for _, win := range windows {
				s := cost[costKey{a.name, win.name, l.name}]
				p(" %.0f%% of %.0f |", 100*medianOf(s, admittedOf), medianOf(s, decisionsOf))
			}
		}
		p("\n")
	}

	p("\n### Latency of one decision: floodgate's helper against envoyproxy/ratelimit's gRPC service\n\n")
	p("Both services run as their own processes on loopback, in front of the same redis-server, with their "+
		"defaults. floodgate: the plugin's exact call (headers and body captured from the plugin for each "+
		"client, absolute strategy) sent to `cmd/redis-helper` over HTTP/1.1 with keep-alive. ratelimit: "+
		"`ShouldRateLimit` with one `remote_address` descriptor, limit 100 per unit, over one gRPC "+
		"connection. Up to %d decisions (at most %s) per run after a warm-up, %d interleaved rounds, "+
		"medians; every decision admitted. Ratios are floodgate / ratelimit: a p50 ratio at most 1 and a "+
		"decisions/s ratio at least 1 meet the target. The direct EVALSHA column is the same script call "+
		"made straight to Redis with go-redis: the floor under the helper's hop.\n\n",
		o.latency.decisions, o.latency.runTime, o.latency.rounds)
	p("| window | concurrency | helper p50 | p99 | decisions/s | ratelimit p50 | p99 | decisions/s | p50 ratio | decisions/s ratio | direct p50 | decisions/s |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, win := range windows {
		for _, c := range o.latency.concurrency {
			h, r, d := lat[latencyKey{pathHelper, win.name, c}], lat[latencyKey{pathRateLimit, win.name, c}], lat[latencyKey{pathDirect, win.name, c}]
			p("| %s | %d | %s | %s | %.0f | %s | %s | %.0f | %.2fx | %.2fx | %s | %.0f |\n", win.name, c,
				us(medianOf(h, p50Of)), us(medianOf(h, p99Of)), medianOf(h, perSecOf),
				us(medianOf(r, p50Of)), us(medianOf(r, p99Of)), medianOf(r, perSecOf),
				medianOf(h, p50Of)/medianOf(r, p50Of), medianOf(h, perSecOf)/medianOf(r, perSecOf),
				us(medianOf(d, p50Of)), medianOf(d, perSecOf))
		}
	}

	p("\nCPU per decision in the same runs (µs, medians): the client's (this process: Go's HTTP/1.1 " +
		"client, grpc-go, go-redis; in production Envoy's part), each service process's (/proc/PID/stat) and " +
		"Redis's (INFO cpu). On this machine all of them share the cores, so at concurrency 16 the " +
		"decisions/s follow the total.\n\n")
	p("| window | concurrency | HTTP client | helper | Redis under the helper | gRPC client | ratelimit service | Redis under ratelimit | go-redis (direct) | Redis under direct EVALSHA |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, win := range windows {
		for _, c := range o.latency.concurrency {
			h, r, d := lat[latencyKey{pathHelper, win.name, c}], lat[latencyKey{pathRateLimit, win.name, c}], lat[latencyKey{pathDirect, win.name, c}]
			p("| %s | %d | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", win.name, c,
				medianOf(h, clientCPUOf), medianOf(h, serviceCPUOf), medianOf(h, redisCPUOf),
				medianOf(r, clientCPUOf), medianOf(r, serviceCPUOf), medianOf(r, redisCPUOf),
				medianOf(d, clientCPUOf), medianOf(d, redisCPUOf))
		}
	}

	p("\n### Targets, from this run\n\n")
	p("| target | worst measured | met |\n| --- | ---: | --- |\n")
	for _, t := range targets(approaches, cost, lat, o) {
		p("| %s | %s | %s |\n", t.name, t.worst, t.met)
	}
}

// costTable writes one cost figure of every approach, with its ratio to base's.
func costTable(w io.Writer, approaches []approach, cost map[costKey][]costSample, base string, f func(costSample) float64, format string) {
	fmt.Fprint(w, "| approach |")
	for _, l := range loads {
		for _, win := range windows {
			fmt.Fprintf(w, " %s, %s |", l.name, win.name)
		}
	}
	fmt.Fprintf(w, "\n| --- |%s\n", strings.Repeat(" ---: |", len(loads)*len(windows)))
	for _, a := range approaches {
		fmt.Fprintf(w, "| %s |", a.name)
		for _, l := range loads {
			for _, win := range windows {
				v := medianOf(cost[costKey{a.name, win.name, l.name}], f)
				b := medianOf(cost[costKey{base, win.name, l.name}], f)
				fmt.Fprintf(w, " "+format+" (%.2fx) |", v, v/b)
			}
		}
		fmt.Fprintln(w)
	}
}

// us formats nanoseconds as microseconds.
func us(ns float64) string { return fmt.Sprintf("%.0f µs", ns/1e3) }

// target is one goal of the Redis mode and how this run did against it.
type target struct{ name, worst, met string }

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// targets evaluates the Redis mode's goals; a strategy this build lacks is reported as such.
func targets(approaches []approach, cost map[costKey][]costSample, lat map[latencyKey][]latencySample, o options) []target {
	has := map[string]bool{}
	for _, a := range approaches {
		has[a.name] = true
	}
	base := redisRateApproach.name
	// worstRatio is the largest ratio of f between approach a and base over every window and load.
	worstRatio := func(a string, f func(costSample) float64) float64 {
		worst := 0.0
		for _, win := range windows {
			for _, l := range loads {
				worst = max(worst, medianOf(cost[costKey{a, win.name, l.name}], f)/medianOf(cost[costKey{base, win.name, l.name}], f))
			}
		}
		return worst
	}
	var out []target
	for _, s := range []string{"gcra", "token_bucket"} {
		name := "floodgate " + s
		if !has[name] {
			out = append(out, target{name + ": CPU at most redis_rate's, bytes at most 1.2x", "not in this build", "—"})
			continue
		}
		c, b := worstRatio(name, cpuOf), worstRatio(name, bytesOf)
		out = append(out, target{name + ": CPU per decision at most redis_rate's", fmt.Sprintf("%.2fx", c), yes(c <= 1)},
			target{name + ": bytes per key at most 1.2x redis_rate's", fmt.Sprintf("%.2fx", b), yes(b <= 1.2)})
	}
	for _, s := range []string{"absolute", "suppressed"} {
		name := "floodgate " + s
		c := worstRatio(name, cpuOf)
		worstBytes := 0.0
		for _, win := range windows[1:] {
			worstBytes = max(worstBytes, medianOf(cost[costKey{name, win.name, loads[0].name}], bytesOf))
		}
		out = append(out, target{name + ": CPU per decision at most 2x redis_rate's at every window", fmt.Sprintf("%.2fx", c), yes(c <= 2)},
			target{name + ": at most 1 KiB per key at 60 s and 1 h (100 requests in the window)", fmt.Sprintf("%.0f B", worstBytes), yes(worstBytes <= 1024)})
	}
	worstP50, worstRate := 0.0, 1e9
	for _, win := range windows {
		for _, c := range o.latency.concurrency {
			h, r := lat[latencyKey{pathHelper, win.name, c}], lat[latencyKey{pathRateLimit, win.name, c}]
			worstP50 = max(worstP50, medianOf(h, p50Of)/medianOf(r, p50Of))
			worstRate = min(worstRate, medianOf(h, perSecOf)/medianOf(r, perSecOf))
		}
	}
	out = append(out, target{"through the helper: p50 at most ratelimit's gRPC service's (every window, concurrency 1 and 16)", fmt.Sprintf("%.2fx", worstP50), yes(worstP50 <= 1)},
		target{"through the helper: decisions/s at least ratelimit's (every window, concurrency 1 and 16)", fmt.Sprintf("%.2fx", worstRate), yes(worstRate >= 1)})
	return out
}
