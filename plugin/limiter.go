package plugin

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/config"
	"github.com/floodgate-proxy/floodgate/internal/host"
)

// limiter is one loaded configuration: its policies, each with its backend and metrics.
type limiter struct {
	opts     Options
	policies []*policyState
	keyBuf   []byte
	helper   *helper // the Redis helper, when a policy uses it
	sync     *syncer // the hybrid backend's syncs, when a policy uses them
	spare    *evaluation
	answer   [][2]string // storage of the last verdict's headers (see verdict)
}

// policyState is one policy at run time.
type policyState struct {
	cfg     *config.Policy
	backend backend
	// local is the policy's state in shared data: its backend for backend local, its fallback
	// (failure mode local) for the others.
	local *localBackend
	m     policyMetrics
	// Error logs are rate-limited to one a second per policy.
	lastLogMs int64
	quiet     int
	missing   missingLog // requests lacking a key part (missingkey.go)
}

// policyMetrics are a policy's counters, named floodgate.<policy>.<what> (Envoy shows them as
// wasmcustom.floodgate.<policy>.<what>).
type policyMetrics struct {
	allowed, rejected, suppressed, shadowRejected, errors, evictions, missingKey host.Metric
	// Decisions taken without the policy's backend, by failure mode.
	fallbacks, failedOpen, failedClosed host.Metric
}

func newLimiter(cfg *config.Config, opts Options) (*limiter, error) {
	l := &limiter{opts: opts}
	for _, p := range cfg.Policies {
		ps := &policyState{cfg: p}
		for _, m := range []struct {
			dst  *host.Metric
			name string
		}{
			{&ps.m.allowed, "allowed"}, {&ps.m.rejected, "rejected"}, {&ps.m.suppressed, "suppressed"},
			{&ps.m.shadowRejected, "shadow_rejected"}, {&ps.m.errors, "errors"}, {&ps.m.evictions, "evictions"},
			{&ps.m.fallbacks, "fallbacks"}, {&ps.m.failedOpen, "failed_open"}, {&ps.m.failedClosed, "failed_closed"},
			{&ps.m.missingKey, "missing_key"},
		} {
			var err error
			if *m.dst, err = host.DefineMetric(host.Counter, "floodgate."+p.Name+"."+m.name); err != nil {
				return nil, fmt.Errorf("policy %s: define metric %s: %w", p.Name, m.name, err)
			}
		}
		var err error
		if ps.local, err = newLocalBackend(cfg, p, ps.m.evictions); err != nil {
			return nil, fmt.Errorf("policy %s: %w", p.Name, err)
		}
		if p.Backend != config.BackendLocal && l.helper == nil {
			if l.helper, err = newHelper(cfg); err != nil {
				return nil, err
			}
		}
		if ps.backend, err = newBackend(l, cfg, ps); err != nil {
			return nil, fmt.Errorf("policy %s: %w", p.Name, err)
		}
		l.policies = append(l.policies, ps)
	}
	return l, nil
}

// tick runs the hybrid backend's syncs.
func (l *limiter) tick() {
	if l.sync != nil {
		l.sync.tick()
	}
}

func (l *limiter) summary() string {
	names := make([]string, len(l.policies))
	for i, p := range l.policies {
		names[i] = fmt.Sprintf("%s (%s, %d limits, backend %s, failure mode %s)", p.cfg.Name, p.cfg.Compiled.Strategy(),
			len(p.cfg.Limits), p.cfg.Backend, p.cfg.FailureMode)
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
	l      *limiter
	req    config.Request
	now    int64
	stream uint32 // the HTTP context, made effective again when a callout answers
	resume func(verdict)
	next   int // the next policy to apply
	first  *policyState
	views  []quotaView
	call   call // the decision in progress
}

// decide applies every policy that matches the request, in order, until one rejects it or one
// needs Redis (pending: resume will be called with the final verdict).
func (l *limiter) decide(req config.Request, stream uint32, resume func(verdict)) (v verdict, pending bool) {
	ev := l.spare
	if ev == nil {
		ev = new(evaluation)
	}
	l.spare = nil
	*ev = evaluation{l: l, req: req, now: l.opts.NowMs(), stream: stream, resume: resume, views: ev.views[:0]}
	v, pending = l.run(ev)
	if !pending {
		// Nothing refers to ev any more (the verdict holds rendered strings): the next request
		// reuses it and its views. A pending evaluation belongs to its callout.
		ev.req, ev.resume, ev.call = nil, nil, call{}
		l.spare = ev
	}
	return v, pending
}

func (l *limiter) run(ev *evaluation) (verdict, bool) {
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
		ev.call = call{ev: ev, ps: ps, key: key, now: ev.now, cost: ps.cfg.CostOf(ev.req), draw: l.opts.Rand()}
		out, pending := ps.backend.decide(&ev.call)
		if pending {
			return verdict{}, true
		}
		if v, stop := l.apply(ev, out); stop {
			return v, false
		}
	}
	if ev.first == nil {
		return verdict{}, false
	}
	l.answer = rateLimitHeaders(ev.first.cfg.Response.Headers, ev.views, l.answer[:0])
	return verdict{headers: l.answer}, false
}

// resumeWith takes the outcome of a decision that was pending and carries on with the request's
// remaining policies; the answer came later, so they decide at their own time.
func (l *limiter) resumeWith(ev *evaluation, out outcome) {
	ev.now = l.opts.NowMs()
	v, stop := l.apply(ev, out)
	if !stop {
		var pending bool
		if v, pending = l.run(ev); pending {
			return
		}
	}
	ev.resume(v)
}

// apply takes the outcome of the call in progress into the evaluation; stop is set when the
// request is answered here.
func (l *limiter) apply(ev *evaluation, out outcome) (verdict, bool) {
	c := &ev.call
	ps := c.ps
	if out.err != nil {
		var answered bool
		if out, answered = ps.failed(c, out); answered {
			return verdict{reject: unavailable}, true
		}
		if out.err != nil {
			return verdict{}, false // failure mode open: the policy lets the request through
		}
	}
	res := out.res
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
