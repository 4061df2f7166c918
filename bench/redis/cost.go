package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// load is how many attempts each client makes per window.
type load struct {
	name      string
	perWindow int
}

var loads = []load{{"all admitted", limitPerWindow}, {"half rejected", 2 * limitPerWindow}}

// costSample is what one run of an approach measured.
type costSample struct {
	cpuUs     float64 // Redis CPU (user + sys) per decision, µs
	bytes     float64 // MEMORY USAGE per key (median of the sampled keys)
	admitted  float64 // share of the decisions admitted
	decisions float64 // decisions made
	keyLen    float64 // length of the sampled key names
}

// costKey names a cell of the cost tables.
type costKey struct {
	approach string
	window   string
	load     string
}

// costOptions size the cost runs.
type costOptions struct {
	clients  int           // distinct clients (keys) a run may use
	rounds   int           // interleaved rounds
	workers  int           // concurrent connections
	sampled  int           // keys whose MEMORY USAGE is read per run
	cellTime time.Duration // a run takes no new client after this time
}

// runCost runs every approach at every window and load, once per round, interleaved (A B C A B
// C ...), each run on a flushed Redis. It returns the samples of every cell, one per round.
func runCost(ctx context.Context, rdb *redis.Client, approaches []approach, o costOptions, progress func(string)) (map[costKey][]costSample, error) {
	ips := clientIPs(o.clients)
	out := map[costKey][]costSample{}
	for r := 0; r < o.rounds; r++ {
		for _, w := range windows {
			for _, l := range loads {
				for _, a := range approaches {
					s, err := runCell(ctx, rdb, a, w, l, ips, o)
					if err != nil {
						return nil, fmt.Errorf("%s, %s, %s: %w", a.name, w.name, l.name, err)
					}
					k := costKey{a.name, w.name, l.name}
					out[k] = append(out[k], s)
				}
			}
		}
		progress(fmt.Sprintf("cost round %d/%d done", r+1, o.rounds))
	}
	return out, nil
}

// clientIPs returns n distinct client addresses.
func clientIPs(n int) []string {
	ips := make([]string, n)
	for i := range ips {
		ips[i] = fmt.Sprintf("10.%d.%d.%d", 1+i>>16&255, i>>8&255, i&255)
	}
	return ips
}

// runCell runs one approach on a flushed Redis: clients, o.workers at a time, each make
// l.perWindow attempts in a row, until every client is done or o.cellTime has passed (a client
// once started always finishes); Redis CPU is measured around them. The first o.sampled clients
// have their key's MEMORY USAGE read right after their last attempt (before a short window can
// expire it).
func runCell(ctx context.Context, rdb *redis.Client, a approach, w window, l load, ips []string, o costOptions) (costSample, error) {
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		return costSample{}, err
	}
	c, err := a.prepare(ctx, rdb, w, ips)
	if err != nil {
		return costSample{}, err
	}
	before, err := redisCPU(ctx, rdb)
	if err != nil {
		return costSample{}, err
	}
	deadline := time.Now().Add(o.cellTime)
	var next, decisions, admitted atomic.Int64
	sizes := make([]float64, min(o.sampled, len(ips)))
	var wg sync.WaitGroup
	errs := make(chan error, o.workers)
	for range o.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := int(next.Add(1) - 1); k < len(ips) && time.Now().Before(deadline); k = int(next.Add(1) - 1) {
				for j := range l.perWindow {
					ok, err := c.decide(ctx, k, j, l.perWindow)
					if err != nil {
						errs <- err
						return
					}
					decisions.Add(1)
					if ok {
						admitted.Add(1)
					}
				}
				if k < len(sizes) {
					n, err := rdb.MemoryUsage(ctx, c.key(k)).Result()
					if err != nil {
						errs <- fmt.Errorf("MEMORY USAGE %s: %w", c.key(k), err)
						return
					}
					sizes[k] = float64(n)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return costSample{}, err
	}
	after, err := redisCPU(ctx, rdb)
	if err != nil {
		return costSample{}, err
	}
	n := float64(decisions.Load())
	var measured, keyLens []float64
	for k, b := range sizes {
		if b > 0 {
			measured = append(measured, b)
			keyLens = append(keyLens, float64(len(c.key(k))))
		}
	}
	return costSample{cpuUs: (after - before) * 1e6 / n, bytes: median(measured), keyLen: median(keyLens), admitted: float64(admitted.Load()) / n, decisions: n}, nil
}

// redisCPU returns used_cpu_user + used_cpu_sys of INFO cpu, in seconds: the CPU time of the
// whole redis-server process.
func redisCPU(ctx context.Context, rdb *redis.Client) (float64, error) {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, err
	}
	var total float64
	found := 0
	for _, line := range strings.Split(info, "\n") {
		name, value, _ := strings.Cut(strings.TrimSpace(line), ":")
		if name == "used_cpu_user" || name == "used_cpu_sys" {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				return 0, fmt.Errorf("INFO cpu %s: %w", line, err)
			}
			total += v
			found++
		}
	}
	if found != 2 {
		return 0, fmt.Errorf("INFO cpu without used_cpu_user and used_cpu_sys: %q", info)
	}
	return total, nil
}
