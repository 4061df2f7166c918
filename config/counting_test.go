package config

import (
	"strings"
	"testing"
)

func TestCountingAndBlocks(t *testing.T) {
	c, err := Parse([]byte(`{"policies":[{"name":"login","key":[{"type":"client_ip"}],"limits":[{"requests":"5/10m"}],
		"count":{"on":"response","statuses":[401,403]},"reset":{"statuses":[200]},"block_for":"10m"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Policies[0]
	if !p.Counting.OnResponse || !p.Counting.Counts(401) || p.Counting.Counts(200) || !p.Counting.Resets(200) || p.BlockMs != 600_000 {
		t.Fatalf("counting %+v block %d", p.Counting, p.BlockMs)
	}
	pol := func(fields string) string {
		return `{"policies":[{"name":"p","key":[{"type":"path"}],"limits":[{"rate":1}]` + fields + `}]}`
	}
	for _, tc := range []struct{ name, json, want string }{
		{"statuses with on request", pol(`,"count":{"on":"request","statuses":[401]}`), `policies[0].count.statuses: applies with "on": "response" only`},
		{"no statuses", pol(`,"count":{"on":"response"}`), "policies[0].count.statuses: must be an array of 1 to 256 HTTP statuses"},
		{"a status out of range", pol(`,"count":{"on":"response","statuses":[99]}`), "policies[0].count.statuses[0]: must be between 100 and 599"},
		{"a status both counts and resets", pol(`,"count":{"on":"response","statuses":[401,200]},"reset":{"statuses":[200]}`),
			"policies[0].reset.statuses[0]: 200 also counts (count.statuses[1]): a status either counts or resets"},
		{"suppressed", pol(`,"strategy":"suppressed","count":{"on":"response","statuses":[401]}`),
			"policies[0].count: does not apply to the suppressed strategy: it sheds on every attempt, so it must count when the request arrives"},
		{"hybrid", `{"redis":{"cluster":"c","token":"t"},"policies":[{"name":"p","key":[{"type":"path"}],"limits":[{"rate":1}],"backend":"hybrid","reset":{"statuses":[200]}}]}`,
			"policies[0].reset: does not apply to the hybrid backend: it spends reservations when requests arrive; use the local or redis backend"},
		{"a bad block", pol(`,"block_for":"10 minutes"`), `policies[0].block_for: must look like "30s", "10m", "1h" or "2d"`},
		{"a block too long", pol(`,"block_for":"40d"`), "policies[0].block_for: must be between 1s and 31d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant %s", err, tc.want)
			}
		})
	}
}
