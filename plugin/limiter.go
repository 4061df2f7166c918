package plugin

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/config"
	"github.com/floodgate-proxy/floodgate/internal/host"
	"github.com/floodgate-proxy/floodgate/store"
)

// limiter is one loaded configuration: its policies, each with its store and metrics.
type limiter struct {
	opts     Options
	policies []*policyState
	keyBuf   []byte
	scratch  []byte  // state buffer for keys seen for the first time
	remote   *remote // the Redis helper, when a policy uses it
	sync     *syncer // the hybrid backend's syncs, when a policy uses it
	spare    *evaluation
	answer   [][2]string // storage of the last verdict's headers (see verdict)
}

type policyState struct {
	cfg   *config.Policy
	store *store.Store
	ttlMs int64
	m     policyMetrics
	// The hybrid backend's leases (hybrid.go), the shared-data bitmap of the lease slots the
	// leader must sync, and how long a reservation may be spent.
	leases     *store.Store
	dirtyKey   string
	validityMs int64
	firstWant  int64    // the first reservation of a key: twice what the limit allows per interval
	unmarked   []uint32 // slots the leader could not mark again (see collect)
	// Error logs are rate-limited to one a second per policy.
	lastLogMs int64
	quiet     int
	missing   missingLog // requests lacking a key part (missingkey.go)
}

// policyMetrics are a policy's counters, named floodgate.<policy>.<what> (Envoy shows them as
// wasmcustom.floodgate.<policy>.<what>).
type policyMetrics struct {
	allowed, rejected, suppressed, shadowRejected, errors, evictions, fallbacks, missingKey host.Metric
}

func newLimiter(cfg *config.Config, opts Options) (*limiter, error) {
	l := &limiter{opts: opts}
	for _, p := range cfg.Policies {
		st, err := store.New(sharedData{}, store.Options{
			Prefix:      cfg.SharedData.Prefix + ":" + p.Name,
			Slots:       cfg.SharedData.Slots,
			Ways:        waysFor(p.Compiled.StateSize()),
			PayloadSize: p.Compiled.StateSize(),
		})
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", p.Name, err)
		}
		ps := &policyState{cfg: p, store: st, ttlMs: p.Compiled.LongestWindowMs()}
		for _, m := range []struct {
			dst  *host.Metric
			name string
		}{
			{&ps.m.allowed, "allowed"}, {&ps.m.rejected, "rejected"}, {&ps.m.suppressed, "suppressed"},
			{&ps.m.shadowRejected, "shadow_rejected"}, {&ps.m.errors, "errors"}, {&ps.m.evictions, "evictions"},
			{&ps.m.fallbacks, "fallbacks"}, {&ps.m.missingKey, "missing_key"},
		} {
			if *m.dst, err = host.DefineMetric(host.Counter, "floodgate."+p.Name+"."+m.name); err != nil {
				return nil, fmt.Errorf("policy %s: define metric %s: %w", p.Name, m.name, err)
			}
		}
		if p.Backend != config.BackendLocal && l.remote == nil {
			if l.remote, err = newRemote(cfg, opts); err != nil {
				return nil, err
			}
		}
		if p.Backend == config.BackendHybrid {
			if l.sync == nil {
				if l.sync, err = newSyncer(cfg, l.remote, uint64(opts.Rand()*(1<<53))+1); err != nil {
					return nil, err
				}
			}
			prefix := cfg.SharedData.Prefix + ":" + p.Name + ":lease"
			if ps.leases, err = store.New(sharedData{}, store.Options{Prefix: prefix, Slots: cfg.SharedData.Slots,
				PayloadSize: leaseSize}); err != nil {
				return nil, fmt.Errorf("policy %s: %w", p.Name, err)
			}
			ps.dirtyKey, ps.validityMs = prefix+":marked", validityMs(p.Compiled, l.sync.intervalMs)
			ps.firstWant = firstWant(p.Compiled, l.sync.intervalMs)
		}
		l.policies = append(l.policies, ps)
		l.scratch = make([]byte, max(len(l.scratch), p.Compiled.StateSize()))
	}
	return l, nil
}

// slotTarget is the slot size the number of ways aims at: every decision copies a whole slot in
// and out of shared data, so large states (long windows in fine buckets) get fewer ways.
const slotTarget = 4096

// waysFor returns the ways per slot for a state of size bytes: 4, down to 1 for large states.
func waysFor(size int) int {
	return max(1, min(4, slotTarget/(size+16)))
}

func (l *limiter) summary() string {
	names := make([]string, len(l.policies))
	for i, p := range l.policies {
		names[i] = fmt.Sprintf("%s (%s, %d limits)", p.cfg.Name, p.cfg.Compiled.Strategy(), len(p.cfg.Limits))
	}
	return strings.Join(names, ", ")
}

// verdict is the outcome of a request: a local answer, or headers for the upstream's response.
// headers are the limiter's storage, valid until its next decision: the caller copies them.
type verdict struct {
	reject  *localAnswer
	headers [][2]string
}

type localAnswer struct {
	Status  uint32
	Headers [][2]string
	Body    []byte
}

// evaluation is one request's walk through the policies. A redis policy suspends it while its
// decision is in flight; the http call's callback resumes it.
type evaluation struct {
	req    config.Request
	now    int64
	stream uint32 // the HTTP context, made effective again when a callout answers
	next   int    // the next policy to apply
	first  *policyState
	views  []quotaView
}

// decide applies every policy that matches the request, in order, until one rejects it or one
// needs Redis (pending: resume will be called with the final verdict).
func (l *limiter) decide(req config.Request, stream uint32, resume func(verdict)) (v verdict, pending bool) {
	ev := l.spare
	if ev == nil {
		ev = new(evaluation)
	}
	l.spare = nil
	*ev = evaluation{req: req, now: l.opts.NowMs(), stream: stream, views: ev.views[:0]}
	v, pending = l.run(ev, resume)
	if !pending {
		// Nothing refers to ev any more (the verdict holds rendered strings): the next request
		// reuses it and its views. A pending evaluation belongs to its callout.
		ev.req = nil
		l.spare = ev
	}
	return v, pending
}

func (l *limiter) run(ev *evaluation, resume func(verdict)) (verdict, bool) {
	for ev.next < len(l.policies) {
		ps := l.policies[ev.next]
		ev.next++
		if !ps.cfg.Matches(ev.req) {
			continue
		}
		key, missing := ps.cfg.BuildKey(ev.req, l.keyBuf)
		if missing != nil {
			if v, stop := ps.missingKey(ev.now, missing); stop {
				return v, false
			}
			if key == nil {
				continue
			}
		}
		l.keyBuf = key[:0]
		cost := ps.cfg.CostOf(ev.req)
		remote := ps.cfg.Backend == config.BackendRedis
		if ps.cfg.Backend == config.BackendHybrid {
			res, viaRedis, err := l.decideHybrid(ps, key, ev.now, cost, ev.stream)
			if err != nil {
				// The lease could not be read or written (contention): Redis decides, exactly; the
				// local store would start from nothing.
				ps.logf(ev.now, "floodgate: policy %s: lease: %v", ps.cfg.Name, err)
				viaRedis = true
			}
			if !viaRedis {
				if v, stop := l.apply(ev, ps, key, cost, res, nil); stop {
					return v, false
				}
				continue
			}
			remote = true
		}
		if remote {
			if !l.remote.breakerOpen(ev.now) {
				key := append([]byte(nil), key...) // keyBuf is reused by other requests meanwhile
				err := l.remote.decide(ps, key, cost, l.opts.Rand(), ev.stream, l.opts.NowMs, func(res algorithm.Result, err error) {
					ev.now = l.opts.NowMs() // the answer came later: later policies decide at their time
					if v, stop := l.apply(ev, ps, key, cost, res, err); stop {
						resume(v)
						return
					}
					if v, pending := l.run(ev, resume); !pending {
						resume(v)
					}
				})
				if err == nil {
					return verdict{}, true
				}
				if v, stop := l.apply(ev, ps, key, cost, algorithm.Result{}, err); stop {
					return v, false
				}
				continue
			}
			if v, stop := l.apply(ev, ps, key, cost, algorithm.Result{}, errBreakerOpen); stop {
				return v, false
			}
			continue
		}
		res, err := l.decideOne(ps, key, ev.now, cost)
		if v, stop := l.apply(ev, ps, key, cost, res, err); stop {
			return v, false
		}
	}
	if ev.first == nil {
		return verdict{}, false
	}
	l.answer = rateLimitHeaders(ev.first.cfg.Response.Headers, ev.views, l.answer[:0])
	return verdict{headers: l.answer}, false
}

// apply takes one policy's decision (or failure) into the evaluation; stop is set when the
// request is answered here.
func (l *limiter) apply(ev *evaluation, ps *policyState, key []byte, cost int64, res algorithm.Result, err error) (verdict, bool) {
	if err != nil {
		_ = ps.m.errors.Add(1)
		ps.logf(ev.now, "floodgate: policy %s: %v", ps.cfg.Name, err)
		switch {
		case ps.cfg.FallbackLocal:
			if res, err = l.decideOne(ps, key, ev.now, cost); err != nil {
				return verdict{}, false
			}
			_ = ps.m.fallbacks.Add(1)
		case ps.cfg.FailOpen:
			return verdict{}, false
		default:
			return verdict{reject: &localAnswer{Status: 503, Headers: [][2]string{{"content-type", "text/plain"}},
				Body: []byte("rate limit state unavailable\n")}}, true
		}
	}
	if ev.first == nil {
		ev.first = ps
	}
	ev.views = append(ev.views, quotaView{Policy: ps.cfg.Name, Limit: res.Limit, WindowS: res.WindowMs / 1000,
		Remaining: res.Remaining, ResetAfterMs: res.ResetAfterMs})
	if res.Allowed {
		_ = ps.m.allowed.Add(1)
		return verdict{}, false
	}
	if ps.cfg.Shadow {
		_ = ps.m.shadowRejected.Add(1)
		ps.logf(ev.now, "floodgate: policy %s: shadow mode let through a request it would reject (%s)", ps.cfg.Name, res.Reason)
		return verdict{}, false
	}
	_ = ps.m.rejected.Add(1)
	if res.Suppressed {
		_ = ps.m.suppressed.Add(1)
	}
	return verdict{reject: rejection(ev, ps, res)}, true
}

// decideOne decides one policy on the key's shared state.
func (l *limiter) decideOne(ps *policyState, key []byte, now, cost int64) (algorithm.Result, error) {
	var res algorithm.Result
	draw := l.opts.Rand()
	info, err := ps.store.Update(key, now, ps.ttlMs, func(cur []byte) ([]byte, bool) {
		dst := cur // decide in place in the slot buffer the host returned
		if dst == nil {
			dst = l.scratch[:0]
		}
		var next []byte
		next, res = ps.cfg.Compiled.Decide(dst, cur, now, cost, draw)
		return next, res.Changed
	})
	if info.Evicted {
		_ = ps.m.evictions.Add(1)
	}
	return res, err
}

// rejection builds the local answer of a request policy ps rejected.
func rejection(ev *evaluation, ps *policyState, res algorithm.Result) *localAnswer {
	resp := ps.cfg.Response
	headers := rateLimitHeaders(ev.first.cfg.Response.Headers, ev.views, nil)
	retry := ceilSeconds(res.RetryAfterMs)
	if res.Reason != algorithm.ReasonCostExceedsQuota {
		headers = append(headers, [2]string{"retry-after", strconv.FormatInt(retry, 10)})
	}
	body := []byte(resp.Body)
	contentType := "text/plain"
	if resp.ProblemJSON {
		contentType = "application/problem+json"
		body = problemJSON(resp.Status, ps.cfg.Name, res, retry)
	}
	headers = append(headers, [2]string{"content-type", contentType})
	return &localAnswer{Status: resp.Status, Headers: headers, Body: body}
}

// problemJSON renders an RFC 9457 problem document.
func problemJSON(status uint32, policy string, res algorithm.Result, retry int64) []byte {
	detail := "quota exhausted"
	switch res.Reason {
	case algorithm.ReasonCostExceedsQuota:
		detail = "request cost exceeds the quota"
	case algorithm.ReasonSuppressed:
		detail = "request shed near the limit"
	case algorithm.ReasonHardLimit:
		detail = "hard limit reached"
	}
	return []byte(`{"type":"about:blank","title":"Too Many Requests","status":` + strconv.Itoa(int(status)) +
		`,"detail":` + strconv.Quote(detail) + `,"policy":` + strconv.Quote(policy) +
		`,"retry_after":` + strconv.FormatInt(retry, 10) + "}")
}

// logf logs at error level, at most once a second per policy, saying how many lines it held back.
func (ps *policyState) logf(now int64, format string, args ...any) {
	if now-ps.lastLogMs < 1000 {
		ps.quiet++
		return
	}
	msg := fmt.Sprintf(format, args...)
	if ps.quiet > 0 {
		msg += fmt.Sprintf(" (%d similar lines held back)", ps.quiet)
	}
	ps.lastLogMs, ps.quiet = now, 0
	host.Log(host.LevelError, msg)
}
