package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	pb "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/floodgate-proxy/floodgate/redislimit"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// A path is one way a proxy gets a decision; one column group of the latency table.
const (
	pathHelper    = "floodgate through its helper (HTTP)"
	pathRateLimit = "envoyproxy/ratelimit service (gRPC)"
	pathDirect    = "floodgate's script, direct EVALSHA (no helper)"
)

var paths = []string{pathHelper, pathRateLimit, pathDirect}

// latencySample is one run of a path.
type latencySample struct {
	p50, p99 time.Duration
	perSec   float64
	// CPU per decision, µs, of the client (this process), the service process (0 for none)
	// and Redis.
	clientCPU, serviceCPU, redisCPU float64
}

// latencyKey names a cell of the latency tables.
type latencyKey struct {
	path        string
	window      string
	concurrency int
}

// latencyOptions size the latency runs.
type latencyOptions struct {
	rounds      int
	concurrency []int
	decisions   int           // per run
	runTime     time.Duration // a run stops early after this
}

// decider makes one decision for client k on a path.
type decider func(ctx context.Context, k int) error

// pathTarget is a path's decider and the process of its service (0 for none).
type pathTarget struct {
	decide decider
	pid    int
}

// latencyTargets are the three paths for one window.
type latencyTargets map[string]pathTarget

// helperDecider sends the plugin's exact calls (captured for each client) to the helper over
// HTTP/1.1 with keep-alive, as an Envoy cluster does, and reads the answer.
func helperDecider(client *http.Client, addr string, calls []helperCall) decider {
	return func(ctx context.Context, k int) error {
		c := calls[k%len(calls)]
		var path, authority string
		for _, h := range c.Headers {
			switch h[0] {
			case ":path":
				path = h[1]
			case ":authority":
				authority = h[1]
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, bytes.NewReader(c.Body))
		if err != nil {
			return err
		}
		req.Host = authority
		for _, h := range c.Headers {
			if h[0][0] != ':' {
				req.Header.Set(h[0], h[1])
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var answer struct {
			Result []int64
			Error  string
		}
		if err := json.Unmarshal(body, &answer); err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("helper answered %s: %.200s", resp.Status, body)
		}
		_, err = redislimit.Result(answer.Result)
		return err
	}
}

// directDecider runs the same script calls straight on Redis with go-redis: the floor the
// helper's hop adds to.
func directDecider(rdb *redis.Client, calls []helperCall) (decider, error) {
	type call struct {
		sha, key string
		argv     []any
	}
	parsed := make([]call, len(calls))
	for i, c := range calls {
		var cmd []string
		if err := json.Unmarshal(c.Body, &cmd); err != nil || len(cmd) < 4 {
			return nil, fmt.Errorf("the plugin's call %q is not a script call", c.Body)
		}
		argv := make([]any, len(cmd)-4)
		for j, a := range cmd[4:] {
			argv[j] = a
		}
		parsed[i] = call{cmd[1], cmd[3], argv}
	}
	return func(ctx context.Context, k int) error {
		c := parsed[k%len(parsed)]
		v, err := rdb.EvalSha(ctx, c.sha, []string{c.key}, c.argv...).Int64Slice()
		if err != nil {
			return err
		}
		_, err = redislimit.Result(v)
		return err
	}, nil
}

// rateLimitDecider asks envoyproxy/ratelimit's ShouldRateLimit over one gRPC connection (HTTP/2),
// as Envoy's rate limit filter does.
func rateLimitDecider(conn *grpc.ClientConn, w window, ips []string) decider {
	client := pb.NewRateLimitServiceClient(conn)
	return func(ctx context.Context, k int) error {
		resp, err := client.ShouldRateLimit(ctx, rateLimitRequest(w, ips[k%len(ips)]))
		if err != nil {
			return err
		}
		if len(resp.Statuses) != 1 {
			return fmt.Errorf("ratelimit answered %d statuses", len(resp.Statuses))
		}
		return nil
	}
}

// newHTTPClient keeps up to 64 idle connections to the helper, as Envoy's HTTP/1.1 pool keeps
// its connections open.
func newHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
}

func newGRPCConn(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// runLatency runs every path at every window and concurrency once per round, interleaved, each
// run on a flushed Redis (so that every decision is admitted, whatever the counts).
func runLatency(ctx context.Context, rdb *redis.Client, targets map[string]latencyTargets, o latencyOptions, progress func(string)) (map[latencyKey][]latencySample, error) {
	out := map[latencyKey][]latencySample{}
	for r := 0; r < o.rounds; r++ {
		for _, w := range windows {
			for _, c := range o.concurrency {
				for _, p := range paths {
					if err := rdb.FlushAll(ctx).Err(); err != nil {
						return nil, err
					}
					s, err := measure(ctx, rdb, targets[w.name][p], c, o)
					if err != nil {
						return nil, fmt.Errorf("%s, %s, concurrency %d: %w", p, w.name, c, err)
					}
					k := latencyKey{p, w.name, c}
					out[k] = append(out[k], s)
				}
			}
		}
		progress(fmt.Sprintf("latency round %d/%d done", r+1, o.rounds))
	}
	return out, nil
}

// measure makes o.decisions decisions (fewer if o.runTime passes first) from concurrency
// goroutines, after a warm-up that opens their connections, and times each one.
func measure(ctx context.Context, rdb *redis.Client, t pathTarget, concurrency int, o latencyOptions) (latencySample, error) {
	d := t.decide
	var next atomic.Int64
	run := func(n int64, deadline time.Time, lat []time.Duration) (int, error) {
		var wg sync.WaitGroup
		var count atomic.Int64
		errs := make(chan error, concurrency)
		for range concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= n || time.Now().After(deadline) {
						return
					}
					start := time.Now()
					if err := d(ctx, int(i)); err != nil {
						errs <- err
						return
					}
					if lat != nil {
						lat[count.Add(1)-1] = time.Since(start)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		return int(count.Load()), <-errs
	}
	if _, err := run(int64(4*concurrency), time.Now().Add(o.runTime), nil); err != nil {
		return latencySample{}, err
	}
	next.Store(0)
	lat := make([]time.Duration, o.decisions)
	redisBefore, err := redisCPU(ctx, rdb)
	if err != nil {
		return latencySample{}, err
	}
	serviceBefore, clientBefore := processCPU(t.pid), selfCPU()
	start := time.Now()
	n, err := run(int64(o.decisions), start.Add(o.runTime), lat)
	elapsed := time.Since(start)
	if err != nil {
		return latencySample{}, err
	}
	serviceAfter, clientAfter := processCPU(t.pid), selfCPU()
	redisAfter, err := redisCPU(ctx, rdb)
	if err != nil {
		return latencySample{}, err
	}
	if n == 0 {
		return latencySample{}, fmt.Errorf("no decision in %s", o.runTime)
	}
	lat = lat[:n]
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return latencySample{p50: lat[n/2], p99: lat[n*99/100], perSec: float64(n) / elapsed.Seconds(),
		clientCPU: (clientAfter - clientBefore) * 1e6 / float64(n), serviceCPU: (serviceAfter - serviceBefore) * 1e6 / float64(n),
		redisCPU: (redisAfter - redisBefore) * 1e6 / float64(n)}, nil
}

// selfCPU returns this process's user + system CPU time in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// processCPU returns the user + system CPU time of process pid in seconds (0 for pid 0), from
// /proc/pid/stat (fields 14 and 15, in clock ticks of 1/100 s on Linux).
func processCPU(pid int) float64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // the name may hold spaces
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100
}
