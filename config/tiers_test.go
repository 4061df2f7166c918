package config

import (
	"strings"
	"testing"
)

const tieredPolicy = `{"policies":[{"name":"per-consumer","key":[{"type":"header","name":"x-api-key"}],
	"tiers":{"by":{"type":"header","name":"x-plan"},
		"values":{"gold":{"limits":[{"requests":"1000/m"}]},"internal":{"unlimited":true}},
		"default":{"limits":[{"requests":"10/m"}]}}}]}`

func TestTiersChooseLimitsByAValueOfTheRequest(t *testing.T) {
	c, err := Parse([]byte(tieredPolicy))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Policies[0]
	if len(p.Tiers) != 3 || p.Compiled != p.Tiers[0].Compiled || p.Limits[0].Quota != 10 {
		t.Fatalf("tiers %+v, default limits %+v", p.Tiers, p.Limits)
	}
	for _, tc := range []struct {
		plan  string // "" for no header
		want  string
		quota int64
	}{
		{plan: "gold", want: "gold", quota: 1000},
		{plan: "internal", want: "internal"},
		{plan: "platinum", want: "", quota: 10}, // unlisted: the default
		{plan: "", want: "", quota: 10},         // missing: the default
		{plan: "GOLD", want: "", quota: 10},     // values match exactly
	} {
		headers := map[string]string{"x-api-key": "k"}
		if tc.plan != "" {
			headers["x-plan"] = tc.plan
		}
		tier := p.TierFor(mapRequest{headers: headers})
		if tier.Name != tc.want || tier.Unlimited != (tc.want == "internal") {
			t.Errorf("plan %q: tier %q (unlimited %v), want %q", tc.plan, tier.Name, tier.Unlimited, tc.want)
			continue
		}
		if !tier.Unlimited && tier.Limits[0].Quota != tc.quota {
			t.Errorf("plan %q: quota %d, want %d", tc.plan, tier.Limits[0].Quota, tc.quota)
		}
	}
}

func TestTiersRefusedWithTheirPath(t *testing.T) {
	pol := func(tiers string) string {
		return `{"policies":[{"name":"p","key":[{"type":"path"}],"tiers":` + tiers + `}]}`
	}
	for _, tc := range []struct{ name, json, want string }{
		{"limits beside tiers", `{"policies":[{"name":"p","key":[{"type":"path"}],"limits":[{"rate":1}],"tiers":{"by":{"type":"method"},"values":{"a":{"unlimited":true}},"default":{"limits":[{"rate":1}]}}}]}`,
			"policies[0].limits: does not go with tiers: give the limits of requests without a listed tier as tiers.default"},
		{"no default", pol(`{"by":{"type":"method"},"values":{"a":{"unlimited":true}}}`),
			`policies[0].tiers.default: is required: the limits of requests without a listed tier (or {"unlimited": true})`},
		{"no by", pol(`{"values":{"a":{"unlimited":true}},"default":{"unlimited":true}}`), "policies[0].tiers.by: is required: the key source whose value names the tier"},
		{"bad by", pol(`{"by":{"type":"cookie"},"values":{"a":{"unlimited":true}},"default":{"unlimited":true}}`),
			"policies[0].tiers.by.type: must be one of header, client_ip, path, method, query, jwt_claim, constant"},
		{"no values", pol(`{"by":{"type":"method"},"values":{},"default":{"unlimited":true}}`), "policies[0].tiers.values: must be an object of 1 to 32 tiers"},
		{"a value twice", pol(`{"by":{"type":"method"},"values":{"a":{"unlimited":true},"a":{"unlimited":true}},"default":{"unlimited":true}}`),
			"policies[0].tiers.values.a: given more than once"},
		{"a tier with both", pol(`{"by":{"type":"method"},"values":{"a":{"unlimited":true,"limits":[{"rate":1}]}},"default":{"unlimited":true}}`),
			"policies[0].tiers.values.a: give one of limits, unlimited"},
		{"a bad limit", pol(`{"by":{"type":"method"},"values":{"a":{"limits":[{"rate":"1"}]}},"default":{"unlimited":true}}`),
			"policies[0].tiers.values.a.limits[0].rate: must be a number"},
		{"a bad value name", pol(`{"by":{"type":"method"},"values":{"a b":{"unlimited":true}},"default":{"unlimited":true}}`),
			"policies[0].tiers.values.a b: a tier's value must be 1 to 64 letters, digits, '_', '.' or '-'"},
		{"unlimited false", pol(`{"by":{"type":"method"},"values":{"a":{"unlimited":false}},"default":{"unlimited":true}}`),
			"policies[0].tiers.values.a.unlimited: must be true (give limits otherwise)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.json))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v\nwant %s", err, tc.want)
			}
		})
	}
	if _, err := Parse([]byte(strings.Replace(tieredPolicy, `"key"`, `"backend":"hybrid","key"`, 1))); err == nil ||
		!strings.Contains(err.Error(), `"hybrid" needs the top-level redis section`) {
		t.Fatalf("hybrid without redis: %v", err)
	}
}
