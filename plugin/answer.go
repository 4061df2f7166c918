package plugin

import (
	"strconv"
	"strings"

	"github.com/floodgate-proxy/floodgate/config"
)

// quotaView is what one policy reports about a request in headers.
type quotaView struct {
	Policy       string
	Limit        int64 // Q of the policy's tightest limit
	WindowS      int64 // window of that limit, seconds
	Remaining    int64
	ResetAfterMs int64
}

// ceilSeconds rounds milliseconds up to whole seconds, never below 0.
func ceilSeconds(ms int64) int64 {
	if ms <= 0 {
		return 0
	}
	return (ms + 999) / 1000
}

// rateLimitHeaders renders the headers of style for the policies that applied to a request. The
// IETF draft headers list every policy; the legacy X-RateLimit-* headers can carry one, the
// tightest (least remaining, then soonest reset).
func rateLimitHeaders(style config.HeaderStyle, views []quotaView, dst [][2]string) [][2]string {
	if len(views) == 0 || style == config.HeadersNone {
		return dst
	}
	if style == config.HeadersIETF || style == config.HeadersBoth {
		var policy, state strings.Builder
		for i, v := range views {
			if i > 0 {
				policy.WriteString(", ")
				state.WriteString(", ")
			}
			policy.WriteString(strconv.Quote(v.Policy))
			policy.WriteString(";q=")
			policy.WriteString(strconv.FormatInt(v.Limit, 10))
			policy.WriteString(";w=")
			policy.WriteString(strconv.FormatInt(v.WindowS, 10))
			state.WriteString(strconv.Quote(v.Policy))
			state.WriteString(";r=")
			state.WriteString(strconv.FormatInt(max(v.Remaining, 0), 10))
			state.WriteString(";t=")
			state.WriteString(strconv.FormatInt(ceilSeconds(v.ResetAfterMs), 10))
		}
		dst = append(dst, [2]string{"ratelimit-policy", policy.String()}, [2]string{"ratelimit", state.String()})
	}
	if style == config.HeadersLegacy || style == config.HeadersBoth {
		t := tightest(views)
		dst = append(dst,
			[2]string{"x-ratelimit-limit", strconv.FormatInt(t.Limit, 10)},
			[2]string{"x-ratelimit-remaining", strconv.FormatInt(max(t.Remaining, 0), 10)},
			[2]string{"x-ratelimit-reset", strconv.FormatInt(ceilSeconds(t.ResetAfterMs), 10)})
	}
	return dst
}

func tightest(views []quotaView) quotaView {
	t := views[0]
	for _, v := range views[1:] {
		if v.Remaining < t.Remaining || (v.Remaining == t.Remaining && v.ResetAfterMs < t.ResetAfterMs) {
			t = v
		}
	}
	return t
}
