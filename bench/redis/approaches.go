package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/floodgate-proxy/floodgate/redislimit"
	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// approach is one way of rate limiting in Redis: one row of the cost tables.
type approach struct {
	name string
	// prepare readies a cell: keys for clients ips, limit 100 per window.
	prepare func(ctx context.Context, rdb *redis.Client, w window, ips []string) (*cell, error)
}

// cell decides for the clients of one run of an approach.
type cell struct {
	// decide decides attempt j (of perWindow per window) of client k.
	decide func(ctx context.Context, k, j, perWindow int) (allowed bool, err error)
	// key is the Redis key holding client k's state (after its attempts).
	key func(k int) string
}

// window is one of the benchmark's windows.
type window struct {
	name    string
	seconds int64
}

var windows = []window{{"1 s", 1}, {"60 s", 60}, {"1 h", 3600}}

// limitPerWindow is every approach's limit: 100 per window.
const limitPerWindow = 100

// floodgateApproach decides with floodgate's script through its public API: the policy as
// config.Parse compiles it from a plugin configuration (strategy and limits as JSON), the script
// and its arguments from redislimit, the Redis key names exactly as the plugin makes them
// (captured from the plugin itself).
//
// With spread, the clock is pinned in ARGV to spread a client's attempts evenly over its window,
// as traffic spreads, instead of the burst a benchmark loop makes: a sliding window keeps a
// record per live bucket, so its cost follows the spread (in production the script reads Redis
// TIME: one redis.call more). Without, the script reads Redis TIME as in production.
func floodgateApproach(name, strategy string, limits func(w window) string, spread bool) approach {
	return approach{name: name, prepare: func(ctx context.Context, rdb *redis.Client, w window, ips []string) (*cell, error) {
		cfg := pluginConfig("per-ip", strategy, limits(w), "unused: only the key names are taken")
		pol, err := compile(cfg)
		if err != nil {
			return nil, err
		}
		calls, err := capture(cfg, ips)
		if err != nil {
			return nil, err
		}
		keys := make([]string, len(calls))
		for i, c := range calls {
			var cmd []string
			if err := json.Unmarshal(c.Body, &cmd); err != nil || len(cmd) < 4 {
				return nil, fmt.Errorf("%s: the plugin's call %q is not a script call", name, c.Body)
			}
			keys[i] = cmd[3]
		}
		script := redislimit.ScriptFor(pol.Compiled)
		if err := rdb.ScriptLoad(ctx, script.Source).Err(); err != nil {
			return nil, fmt.Errorf("%s: script load: %w", name, err)
		}
		start := time.Now().UnixMilli()
		windowMs := w.seconds * 1000
		return &cell{
			key: func(k int) string { return keys[k] },
			decide: func(ctx context.Context, k, j, perWindow int) (bool, error) {
				now := int64(-1)
				if spread {
					now = start + int64(j)*windowMs/int64(perWindow)
				}
				args := redislimit.Args(pol.Compiled, redislimit.Call{Cost: 1, Draw: rand.Float64(), NowMs: now})
				argv := make([]any, len(args))
				for i, a := range args {
					argv[i] = a
				}
				v, err := rdb.EvalSha(ctx, script.SHA, []string{keys[k]}, argv...).Int64Slice()
				if err != nil {
					return false, err
				}
				res, err := redislimit.Result(v)
				return res.Allowed, err
			},
		}, nil
	}}
}

// floodgateApproaches are floodgate's strategies, one row each.
var floodgateApproaches = []approach{
	floodgateApproach("floodgate absolute", "absolute", requestsPer, true),
	floodgateApproach("floodgate suppressed", "suppressed", requestsPer, true),
	floodgateApproach("floodgate gcra", "gcra", requestsPer, false),
	floodgateApproach("floodgate token_bucket", "token_bucket", func(w window) string {
		return fmt.Sprintf(`{"rate":%g,"burst":%d}`, float64(limitPerWindow)/float64(w.seconds), limitPerWindow)
	}, false),
}

// requestsPer is the limit of 100 per window in floodgate's syntax.
func requestsPer(w window) string {
	return fmt.Sprintf(`{"requests":"%d/%ds"}`, limitPerWindow, w.seconds)
}

// redisRateApproach is go-redis/redis_rate v10, called as its README shows: Allow on its own
// Limiter (GCRA in one script; the key is "rate:" + the caller's key).
var redisRateApproach = approach{name: "go-redis/redis_rate v10", prepare: func(_ context.Context, rdb *redis.Client, w window, ips []string) (*cell, error) {
	limiter := redis_rate.NewLimiter(rdb)
	limit := redis_rate.Limit{Rate: limitPerWindow, Burst: limitPerWindow, Period: time.Duration(w.seconds) * time.Second}
	return &cell{
		key: func(k int) string { return "rate:ip:" + ips[k] },
		decide: func(ctx context.Context, k, _, _ int) (bool, error) {
			res, err := limiter.Allow(ctx, "ip:"+ips[k], limit)
			if err != nil {
				return false, err
			}
			return res.Allowed > 0, nil
		},
	}, nil
}}

// rateLimitApproach sends what envoyproxy/ratelimit's Redis backend sends for one descriptor
// with a limit per unit (src/redis/fixed_cache_impl.go, pipelineAppend): INCRBY key hits and
// EXPIRE key unit+jitter, pipelined, then compares the count with the limit. The key is
// CACHE_KEY_PREFIX (default "") + domain + "_" + each entry's key and value + "_" + the window's
// start in Unix seconds (src/limiter/cache_key.go, GenerateCacheKey); the jitter is
// EXPIRATION_JITTER_MAX_SECONDS (default 300). The descriptor is what Envoy's remote_address
// action makes.
var rateLimitApproach = approach{name: "envoyproxy/ratelimit (INCRBY + EXPIRE)", prepare: func(_ context.Context, rdb *redis.Client, w window, ips []string) (*cell, error) {
	used := make([]string, len(ips)) // the key each client last used (one worker per client)
	return &cell{
		key: func(k int) string { return used[k] },
		decide: func(ctx context.Context, k, _, _ int) (bool, error) {
			now := time.Now().Unix()
			key := rateLimitDomain(w) + "_remote_address_" + ips[k] + "_" + strconv.FormatInt(now/w.seconds*w.seconds, 10)
			used[k] = key
			var incr *redis.IntCmd
			_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				incr = p.IncrBy(ctx, key, 1)
				p.Expire(ctx, key, time.Duration(w.seconds+rand.Int64N(300))*time.Second)
				return nil
			})
			if err != nil {
				return false, err
			}
			return incr.Val() <= limitPerWindow, nil
		},
	}, nil
}}
