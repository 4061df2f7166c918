package plugin

import (
	"fmt"

	"github.com/floodgate-proxy/floodgate/config"
	"github.com/floodgate-proxy/floodgate/internal/host"
)

// missingKey counts a request lacking part of the policy's key and applies the policy's
// missing_key action: stop is set when the request is rejected (v is the answer). With fallback,
// BuildKey has already built the fallback key; with skip, the caller moves on. A shadow policy
// never rejects: it counts the request in shadow_rejected instead.
func (ps *policyState) missingKey(now int64, part *config.KeyPart) (v verdict, stop bool) {
	_ = ps.m.missingKey.Add(1)
	mk := &ps.cfg.MissingKey
	reject := mk.Action == config.MissingReject
	if reject && ps.cfg.Shadow {
		_ = ps.m.shadowRejected.Add(1)
		reject = false
	}
	ps.missing.log(now, ps.cfg, part)
	if !reject {
		return verdict{}, false
	}
	return verdict{reject: &localAnswer{Status: mk.Status, Headers: [][2]string{{"content-type", "text/plain"}},
		Body: []byte("rate limit key missing\n")}}, true
}

// missingLog rate-limits the lines about requests lacking a key part: the first is logged at once,
// then at most one a minute per policy, saying how many were held back. Such requests are often
// ordinary traffic (anonymous clients), so the line is informational; the missing_key counter
// counts every one.
type missingLog struct {
	lastMs int64
	quiet  int
	logged bool
}

const missingLogEveryMs = 60_000

func (l *missingLog) log(now int64, p *config.Policy, part *config.KeyPart) {
	if l.logged && now-l.lastMs < missingLogEveryMs {
		l.quiet++
		return
	}
	var what string
	switch p.MissingKey.Action {
	case config.MissingFallback:
		what = "counted under the fallback key"
	case config.MissingSkip:
		what = "not limited by this policy (missing_key skip)"
	case config.MissingReject:
		what = fmt.Sprintf("answered %d", p.MissingKey.Status)
		if p.Shadow {
			what = "let through (shadow mode)"
		}
	}
	msg := fmt.Sprintf("floodgate: policy %s: a request lacks key part %s: %s", p.Name, part, what)
	if l.quiet > 0 {
		msg += fmt.Sprintf(" (%d more since the last line)", l.quiet)
	}
	host.Log(host.LevelInfo, msg)
	l.lastMs, l.quiet, l.logged = now, 0, true
}
