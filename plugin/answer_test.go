package plugin

import (
	"reflect"
	"testing"

	"github.com/floodgate-proxy/floodgate/config"
)

func TestRateLimitHeaders(t *testing.T) {
	one := []quotaView{{Policy: "per-client", Limit: 10, WindowS: 1, Remaining: 3, ResetAfterMs: 400}}
	two := []quotaView{
		{Policy: "a", Limit: 100, WindowS: 60, Remaining: 50, ResetAfterMs: 30000},
		{Policy: "b", Limit: 5, WindowS: 10, Remaining: 0, ResetAfterMs: 2001},
	}
	tests := []struct {
		name  string
		style config.HeaderStyle
		views []quotaView
		want  [][2]string
	}{
		{name: "ietf", style: config.HeadersIETF, views: one, want: [][2]string{
			{"ratelimit-policy", `"per-client";q=10;w=1`},
			{"ratelimit", `"per-client";r=3;t=1`},
		}},
		{name: "legacy", style: config.HeadersLegacy, views: one, want: [][2]string{
			{"x-ratelimit-limit", "10"}, {"x-ratelimit-remaining", "3"}, {"x-ratelimit-reset", "1"},
		}},
		{name: "both lists every policy, legacy the tightest", style: config.HeadersBoth, views: two, want: [][2]string{
			{"ratelimit-policy", `"a";q=100;w=60, "b";q=5;w=10`},
			{"ratelimit", `"a";r=50;t=30, "b";r=0;t=3`},
			{"x-ratelimit-limit", "5"}, {"x-ratelimit-remaining", "0"}, {"x-ratelimit-reset", "3"},
		}},
		{name: "none", style: config.HeadersNone, views: one, want: nil},
		{name: "no policy applied", style: config.HeadersBoth, views: nil, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := rateLimitHeaders(tc.style, tc.views, nil)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestCeilSeconds(t *testing.T) {
	for _, tc := range []struct{ ms, want int64 }{{-5, 0}, {0, 0}, {1, 1}, {999, 1}, {1000, 1}, {1001, 2}} {
		if got := ceilSeconds(tc.ms); got != tc.want {
			t.Errorf("ceilSeconds(%d) = %d, want %d", tc.ms, got, tc.want)
		}
	}
}
