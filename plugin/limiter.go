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
	cfg *config.Policy
	// tiers are the policy's sets of limits, as cfg.Tiers (nil for an unlimited tier).
	tiers []*tierState
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
	// Responses that counted a request, and that cleared a key (count and reset by response).
	recorded, resets host.Metric
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
			{&ps.m.missingKey, "missing_key"}, {&ps.m.recorded, "recorded"}, {&ps.m.resets, "resets"},
		} {
			var err error
			if *m.dst, err = host.DefineMetric(host.Counter, "floodgate."+p.Name+"."+m.name); err != nil {
				return nil, fmt.Errorf("policy %s: define metric %s: %w", p.Name, m.name, err)
			}
		}
		if p.Backend != config.BackendLocal && l.helper == nil {
			var err error
			if l.helper, err = newHelper(cfg); err != nil {
				return nil, err
			}
		}
		for _, tier := range p.Tiers {
			if tier.Unlimited {
				ps.tiers = append(ps.tiers, nil)
				continue
			}
			ts, err := newTierState(l, cfg, ps, tier)
			if err != nil {
				return nil, fmt.Errorf("policy %s: %w", p.Name, err)
			}
			ps.tiers = append(ps.tiers, ts)
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
		limits := fmt.Sprintf("%d limits", len(p.cfg.Limits))
		if len(p.cfg.Tiers) > 1 {
			limits = fmt.Sprintf("%d tiers", len(p.cfg.Tiers))
		}
		names[i] = fmt.Sprintf("%s (%s, %s, backend %s, failure mode %s)", p.cfg.Name, p.cfg.Strategy, limits, p.cfg.Backend, p.cfg.FailureMode)
	}
	return strings.Join(names, ", ")
}

// verdict is the outcome of a request: a local answer, or headers for the upstream's response.
// headers are the limiter's storage, valid until its next decision: the caller copies them.
type verdict struct {
	reject  *localAnswer
	headers [][2]string
	// responses are the policies to tell about the upstream's answer; the caller copies them.
	responses []responseHook
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
	// admitted are the admissions made so far, given back if a later policy rejects the request
	// (all or nothing: see undo.go); their keys are in keys. responses are the policies to tell
	// about the upstream's answer (response.go).
	admitted  []admission
	keys      []byte
	responses []responseHook
}

// decide applies every policy that matches the request, in order, until one rejects it or one
// needs Redis (pending: resume will be called with the final verdict).
func (l *limiter) decide(req config.Request, stream uint32, resume func(verdict)) (v verdict, pending bool) {
	ev := l.spare
	if ev == nil {
		ev = new(evaluation)
	}
	l.spare = nil
	*ev = evaluation{l: l, req: req, now: l.opts.NowMs(), stream: stream, resume: resume, views: ev.views[:0],
		admitted: ev.admitted[:0], keys: ev.keys[:0], responses: ev.responses[:0]}
	v, pending = l.run(ev)
	if !pending {
		v = l.conclude(ev, v)
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
		ts := ps.tierFor(ev.req)
		if ts == nil {
			continue // an unlimited tier
		}
		l.keyBuf = key[:0]
		ev.call = call{ev: ev, ps: ps, ts: ts, key: key, now: ev.now, cost: ps.cfg.CostOf(ev.req), draw: l.opts.Rand()}
		if ps.cfg.Counting.OnResponse {
			// Checked now, counted when the upstream answers (response.go).
			if v, stop := l.apply(ev, ts.check(&ev.call)); stop {
				return v, false
			}
			continue
		}
		out, pending := ts.backend.decide(&ev.call)
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
	ev.resume(l.conclude(ev, v))
}

// conclude ends an evaluation: a rejected request gives back what other policies admitted, an
// admitted one takes along the policies that wait for its response.
func (l *limiter) conclude(ev *evaluation, v verdict) verdict {
	if v.reject != nil {
		l.undo(ev)
		return v
	}
	v.responses = ev.responses
	return v
}

// apply takes the outcome of the call in progress into the evaluation; stop is set when the
// request is answered here.
func (l *limiter) apply(ev *evaluation, out outcome) (verdict, bool) {
	c := &ev.call
	ps := c.ps
	if out.err != nil {
		var answered bool
		failed := out
		if out, answered = ps.failed(c, out); answered {
			return verdict{reject: unavailable}, true
		}
		if out.err != nil {
			// Failure mode open: the policy lets the request through (what the backend counted
			// on the local store before it failed is given back if another policy rejects it).
			if failed.counted {
				ev.admit(c, outcome{})
			}
			return verdict{}, false
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
		if ps.cfg.Counting.OnResponse {
			ev.awaitResponse(c)
		} else {
			ev.admit(c, out)
			if len(ps.cfg.Counting.ResetStatuses) > 0 {
				ev.awaitResponse(c)
			}
		}
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
	case algorithm.ReasonBlocked:
		detail = "key blocked after a rejection"
	}
	return []byte(`{"type":"about:blank","title":"Too Many Requests","status":` + strconv.Itoa(int(status)) +
		`,"detail":` + strconv.Quote(detail) + `,"policy":` + strconv.Quote(policy) +
		`,"retry_after":` + strconv.FormatInt(retry, 10) + "}")
}

// logf logs at error level, at most once a second per policy, saying how many lines it held back.
func (ps *policyState) logf(now int64, format string, args ...any) {
	logLimited(&ps.lastLogMs, &ps.quiet, now, format, args...)
}

// logLimited logs at error level unless it logged less than a second ago (last), counting the
// lines it holds back in quiet and saying how many with the next one.
func logLimited(last *int64, quiet *int, now int64, format string, args ...any) {
	if now-*last < 1000 {
		*quiet++
		return
	}
	msg := fmt.Sprintf(format, args...)
	if *quiet > 0 {
		msg += fmt.Sprintf(" (%d similar lines held back)", *quiet)
	}
	*last, *quiet = now, 0
	host.Log(host.LevelError, msg)
}
