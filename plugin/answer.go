package plugin

import (
	"strconv"

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
	// Every value is rendered into one buffer that becomes one string: one allocation, where
	// strconv.Format* and strings.Builder would make one per number and per growth.
	var buf [128]byte
	b := buf[:0]
	var ietf, legacy int // where the IETF state and the legacy headers start in b
	if style == config.HeadersIETF || style == config.HeadersBoth {
		for i, v := range views {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = strconv.AppendQuote(b, v.Policy)
			b = append(b, ";q="...)
			b = strconv.AppendInt(b, v.Limit, 10)
			b = append(b, ";w="...)
			b = strconv.AppendInt(b, v.WindowS, 10)
		}
		ietf = len(b)
		for i, v := range views {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = strconv.AppendQuote(b, v.Policy)
			b = append(b, ";r="...)
			b = strconv.AppendInt(b, max(v.Remaining, 0), 10)
			b = append(b, ";t="...)
			b = strconv.AppendInt(b, ceilSeconds(v.ResetAfterMs), 10)
		}
	}
	legacy = len(b)
	var ends [3]int
	if style == config.HeadersLegacy || style == config.HeadersBoth {
		t := tightest(views)
		b = strconv.AppendInt(b, t.Limit, 10)
		ends[0] = len(b)
		b = strconv.AppendInt(b, max(t.Remaining, 0), 10)
		ends[1] = len(b)
		b = strconv.AppendInt(b, ceilSeconds(t.ResetAfterMs), 10)
		ends[2] = len(b)
	}
	all := string(b)
	if style == config.HeadersIETF || style == config.HeadersBoth {
		dst = append(dst, [2]string{"ratelimit-policy", all[:ietf]}, [2]string{"ratelimit", all[ietf:legacy]})
	}
	if style == config.HeadersLegacy || style == config.HeadersBoth {
		dst = append(dst,
			[2]string{"x-ratelimit-limit", all[legacy:ends[0]]},
			[2]string{"x-ratelimit-remaining", all[ends[0]:ends[1]]},
			[2]string{"x-ratelimit-reset", all[ends[1]:ends[2]]})
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
