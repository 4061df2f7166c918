// Command bench-redis compares floodgate's Redis decisions with go-redis/redis_rate and with
// envoyproxy/ratelimit on one redis-server it starts itself (`make bench-redis`):
//
//   - Redis CPU per decision (used_cpu_user + used_cpu_sys of INFO cpu over a run, divided by the
//     decisions) and bytes per key (MEMORY USAGE), for 100 per window at 1 s, 60 s and 1 h, with
//     every attempt admitted and with twice as many attempts as the limit, in interleaved rounds;
//   - the latency and throughput of one decision through floodgate's helper (the plugin's exact
//     request, over loopback HTTP) against envoyproxy/ratelimit's ShouldRateLimit over gRPC, both
//     services built and run as their own processes, at concurrency 1 and 16.
//
// It prints markdown tables, and with -update rewrites their section of BENCHMARKS.md. It is a
// module of its own so that redis_rate's and ratelimit's dependencies never enter floodgate's.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/floodgate-proxy/floodgate/internal/redistest"
	"github.com/floodgate-proxy/floodgate/redislimit"
	"github.com/redis/go-redis/v9"
)

// options are the whole run's settings.
type options struct {
	cost    costOptions
	latency latencyOptions
	// command is how the run was started, for the report.
	command string
}

func defaultOptions() options {
	return options{
		cost:    costOptions{clients: 1000, rounds: 5, workers: 8, sampled: 25, cellTime: 700 * time.Millisecond},
		latency: latencyOptions{rounds: 5, concurrency: []int{1, 16}, decisions: 2000, runTime: time.Second},
		command: "make bench-redis",
	}
}

func main() {
	o := defaultOptions()
	flag.IntVar(&o.cost.clients, "clients", o.cost.clients, "distinct clients (keys) per cost run")
	flag.IntVar(&o.cost.rounds, "rounds", o.cost.rounds, "interleaved rounds of the cost runs")
	flag.DurationVar(&o.cost.cellTime, "cell-time", o.cost.cellTime, "a cost run starts no new client after this")
	flag.IntVar(&o.latency.rounds, "latency-rounds", o.latency.rounds, "interleaved rounds of the latency runs")
	flag.IntVar(&o.latency.decisions, "latency-decisions", o.latency.decisions, "decisions per latency run")
	update := flag.String("update", "", "rewrite the generated section of this markdown file (BENCHMARKS.md) instead of printing")
	flag.Parse()
	var settings []string
	flag.Visit(func(f *flag.Flag) {
		if f.Name != "update" {
			settings = append(settings, "-"+f.Name+"="+f.Value.String())
		}
	})
	if len(settings) > 0 {
		o.command = "cd bench/redis && go run . " + strings.Join(settings, " ")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := run(ctx, o, func(msg string) { fmt.Fprintln(os.Stderr, "bench-redis:", msg) })
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-redis:", err)
		os.Exit(1)
	}
	if *update == "" {
		fmt.Print(report)
		return
	}
	if err := updateSection(*update, report); err != nil {
		fmt.Fprintln(os.Stderr, "bench-redis:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "bench-redis: wrote", *update)
}

// run starts redis-server and both services, measures, and returns the report.
func run(ctx context.Context, o options, progress func(string)) (string, error) {
	started := time.Now()
	dir, err := os.MkdirTemp("", "bench-redis-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	progress("building redis-helper and envoyproxy/ratelimit")
	helperBin, rateLimitBin, err := buildServices(ctx, dir)
	if err != nil {
		return "", err
	}
	srv, err := redistest.Start()
	if err != nil {
		return "", err
	}
	defer srv.Stop()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 2 * max(o.cost.workers, 16)})
	defer rdb.Close()
	env, err := describeMachine(ctx, rdb)
	if err != nil {
		return "", err
	}

	progress("measuring Redis CPU and memory")
	cost, err := runCost(ctx, rdb, allApproaches(), o.cost, progress)
	if err != nil {
		return "", err
	}

	progress("starting the services")
	lat, err := measureLatency(ctx, rdb, srv.Addr, helperBin, rateLimitBin, dir, clientIPs(o.cost.clients), o.latency, progress)
	if err != nil {
		return "", err
	}
	env.duration, env.load = time.Since(started), loadAverage()
	var b strings.Builder
	writeReport(&b, o, env, cost, lat)
	return b.String(), nil
}

// measureLatency starts floodgate's helper and ratelimit's service in front of the Redis at
// redisAddr and runs the latency rounds for clients ips.
func measureLatency(ctx context.Context, rdb *redis.Client, redisAddr, helperBin, rateLimitBin, dir string, ips []string,
	o latencyOptions, progress func(string)) (map[latencyKey][]latencySample, error) {
	token := rand.Text() + rand.Text() // the helper wants at least 32 characters
	helper, err := startHelper(helperBin, dir, redisAddr, token)
	if err != nil {
		return nil, err
	}
	defer helper.stop()
	rateLimit, err := startRateLimit(rateLimitBin, dir, redisAddr)
	if err != nil {
		return nil, err
	}
	defer rateLimit.stop()
	conn, err := newGRPCConn(rateLimit.addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	httpClient := newHTTPClient()
	defer httpClient.CloseIdleConnections()
	targets := map[string]latencyTargets{}
	for _, w := range windows {
		calls, err := capture(pluginConfig("per-ip", "absolute", requestsPer(w), token), ips)
		if err != nil {
			return nil, err
		}
		direct, err := directDecider(rdb, calls)
		if err != nil {
			return nil, err
		}
		targets[w.name] = latencyTargets{
			pathHelper:    {helperDecider(httpClient, helper.addr, calls), helper.cmd.Process.Pid},
			pathRateLimit: {rateLimitDecider(conn, w, ips), rateLimit.cmd.Process.Pid},
			pathDirect:    {decide: direct},
		}
	}
	for _, s := range redislimit.Scripts() { // the plugin's EVAL on NOSCRIPT, done once
		if err := rdb.ScriptLoad(ctx, s.Source).Err(); err != nil {
			return nil, err
		}
	}
	progress("measuring latency")
	return runLatency(ctx, rdb, targets, o, progress)
}

// allApproaches are the rows of the cost tables.
func allApproaches() []approach {
	return append(append([]approach{}, floodgateApproaches...), redisRateApproach, rateLimitApproach)
}

// updateSection replaces the generated section of the markdown file path (between
// sectionStart and sectionEnd) with report, or appends it when the file has none.
func updateSection(path, report string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	section := sectionStart + "\n" + report + sectionEnd
	s := string(old)
	i, j := strings.Index(s, sectionStart), strings.Index(s, sectionEnd)
	switch {
	case i >= 0 && j > i:
		s = s[:i] + section + s[j+len(sectionEnd):]
	case i < 0 && j < 0:
		s = strings.TrimRight(s, "\n") + "\n\n" + section + "\n"
	default:
		return fmt.Errorf("%s: %q and %q do not enclose a section", path, sectionStart, sectionEnd)
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

const (
	sectionStart = "<!-- bench-redis: generated by `make bench-redis`; edit bench/redis, not this section -->"
	sectionEnd   = "<!-- end bench-redis -->"
)
