package plugin

import (
	"errors"
	"fmt"

	"github.com/floodgate-proxy/floodgate/internal/host"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/tidwall/gjson"
)

// probe makes a misconfigured Redis helper loud at load: when a policy uses the redis or hybrid
// backend, the root context sends one PING through redis.cluster as soon as the configuration is
// loaded, and again on the tick (at most once a second) until the helper answers PONG. Without it
// a typo in redis.cluster or a wrong token only shows as requests passing without rate-limit
// headers (the failure mode) and an error line per second.
//
// Every failed PING counts in a metric of its cause; a cause is logged at critical level when it
// first appears (and again when the cause changes), the answer at info level. The probe checks
// the configuration once: later outages are the breaker's business (breaker.go).
type probe struct {
	h         *helper
	timeoutMs uint32
	// ownsTick: no hybrid policy arms the tick, so the probe arms it while it waits and disarms
	// it once the helper answered.
	ownsTick bool
	inFlight bool
	done     bool
	nextMs   int64
	logged   probeOutcome // the cause logged last
	m        [probeOutcomes]host.Metric
}

// probeOutcome is what one PING found.
type probeOutcome uint8

const (
	probeOK probeOutcome = iota
	probeUnknownCluster
	probeRefused
	probeUnreachable
	probeUnexpected
	probeOutcomes
)

// probeMetrics names the counter of each failed outcome (floodgate.redis.probe_<name>).
var probeMetrics = [probeOutcomes]string{
	probeUnknownCluster: "unknown_cluster", probeRefused: "refused", probeUnreachable: "unreachable", probeUnexpected: "unexpected",
}

// probeBody is the helper command: the helper allows PING by default.
var probeBody = []byte(`["PING"]`)

const (
	probeEveryMs      = 1000
	probeMinTimeoutMs = 1000 // a first call may have to connect: do not call a slow start a failure
)

// newProbe returns the probe of the helper h, or nil when no policy uses it (h is nil). ownsTick
// says that nothing else arms the VM's tick.
func newProbe(h *helper, ownsTick bool) (*probe, error) {
	if h == nil {
		return nil, nil
	}
	pr := &probe{h: h, ownsTick: ownsTick, timeoutMs: max(h.cfg.TimeoutMs, probeMinTimeoutMs), logged: probeOK}
	for o := probeUnknownCluster; o < probeOutcomes; o++ {
		var err error
		if pr.m[o], err = host.DefineMetric(host.Counter, "floodgate.redis.probe_"+probeMetrics[o]); err != nil {
			return nil, fmt.Errorf("define metric: %w", err)
		}
	}
	if ownsTick {
		if err := host.SetTickPeriod(probeEveryMs); err != nil {
			return nil, fmt.Errorf("set the tick period: %w", err)
		}
	}
	return pr, nil
}

// tick sends the next PING when the last one failed and a second has passed.
func (pr *probe) tick(now int64) {
	if pr.done || pr.inFlight || now < pr.nextMs {
		return
	}
	pr.nextMs = now + probeEveryMs
	pr.inFlight = true
	err := pr.h.post(false, probeBody, pr.timeoutMs, func(numHeaders, bodySize int) {
		pr.inFlight = false
		pr.report(classify(numHeaders, bodySize))
	})
	if err != nil {
		pr.inFlight = false
		if errors.Is(err, types.ErrorStatusBadArgument) {
			pr.report(probeUnknownCluster, "proxy_http_call answered BadArgument")
			return
		}
		pr.report(probeUnexpected, err.Error())
	}
}

// classify reads the helper's answer to a PING in the running callback.
func classify(numHeaders, bodySize int) (probeOutcome, string) {
	status, body, err := helperAnswer(numHeaders, bodySize)
	switch {
	case err != nil:
		return probeUnreachable, err.Error()
	case status == "200" && gjson.GetBytes(body, "result").String() == "PONG":
		return probeOK, ""
	case status == "401" || status == "403":
		return probeRefused, "answered " + status
	case status == "502" || status == "503" || status == "504":
		return probeUnreachable, fmt.Sprintf("answered %s %.80q", status, body)
	}
	return probeUnexpected, fmt.Sprintf("answered %s %.80q", status, body)
}

// report counts and logs one outcome.
func (pr *probe) report(o probeOutcome, detail string) {
	c := pr.h.cfg.Cluster
	if o == probeOK {
		pr.done = true
		host.Log(host.LevelInfo, fmt.Sprintf("floodgate: redis helper %s answered PING: ready", c))
		if pr.ownsTick {
			_ = host.SetTickPeriod(0)
		}
		return
	}
	_ = pr.m[o].Add(1)
	if o == pr.logged {
		return
	}
	pr.logged = o
	var msg string
	switch o {
	case probeUnknownCluster:
		msg = fmt.Sprintf("redis.cluster %q is not a cluster of this proxy (%s): every redis and hybrid decision fails and the failure mode applies; "+
			"fix redis.cluster (Envoy: static_resources.clusters[].name; Istio: outbound|PORT||HOST of the helper's Service)", c, detail)
	case probeRefused:
		msg = fmt.Sprintf("redis helper %s refused the token (%s): every redis and hybrid decision fails and the failure mode applies; "+
			"redis.token (or the variable redis.token_env names) must be the helper's token", c, detail)
	case probeUnreachable:
		msg = fmt.Sprintf("redis helper %s is unreachable (%s): redis and hybrid decisions fail and the failure mode applies until it answers; "+
			"check that the helper runs and that the cluster's address and port are its own", c, detail)
	default:
		msg = fmt.Sprintf("redis helper %s gave an unexpected answer to PING (%s): is redis.cluster the helper, and does it allow PING?", c, detail)
	}
	host.Log(host.LevelCritical, "floodgate: "+msg+"; retrying every second")
}
