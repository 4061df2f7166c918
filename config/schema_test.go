package config

import (
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// TestSchemaMatchesParser keeps schema.json and the parser from drifting: the schema's property
// names are exactly the fields the parser accepts, object by object.
func TestSchemaMatchesParser(t *testing.T) {
	data, err := os.ReadFile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !gjson.ValidBytes(data) {
		t.Fatal("schema.json is not valid JSON")
	}
	s := gjson.ParseBytes(data)
	keys := func(path string) string {
		var out []string
		s.Get(path).ForEach(func(k, _ gjson.Result) bool { out = append(out, k.String()); return true })
		sort.Strings(out)
		return strings.Join(out, ",")
	}
	sorted := func(fields ...string) string {
		sort.Strings(fields)
		return strings.Join(fields, ",")
	}
	tests := []struct{ path, want string }{
		{"properties", sorted("shared_data", "redis", "policies")},
		{"properties.redis.properties", sorted("cluster", "authority", "token", "token_env", "timeout_ms", "breaker", "sync_interval_ms", "sync_timeout_ms")},
		{"properties.shared_data.properties", sorted("prefix", "slots")},
		{"$defs.policy.properties", sorted(policyFields...)},
		{"$defs.policy.properties.match.properties", sorted("path", "methods", "hosts", "headers")},
		{"$defs.policy.properties.response.properties", sorted("status", "body", "problem_json", "headers")},
		{"$defs.limit.properties", sorted("rate", "window", "requests", "group_ms", "burst")},
		{"$defs.policy.properties.tiers.properties", sorted("by", "values", "default")},
		{"$defs.tier.properties", sorted("limits", "unlimited")},
		{"$defs.policy.properties.count.properties", sorted("on", "statuses")},
		{"$defs.policy.properties.reset.properties", sorted("statuses")},
		{"$defs.policy.properties.missing_key.properties", sorted("action", "key", "value", "status")},
	}
	for _, tc := range tests {
		if got := keys(tc.path); got != tc.want {
			t.Errorf("%s: schema has %s, parser accepts %s", tc.path, got, tc.want)
		}
	}
	var types []string
	s.Get("$defs.keyPart.oneOf.#.properties.type.const").ForEach(func(_, v gjson.Result) bool { types = append(types, v.String()); return true })
	if got, want := sorted(types...), sorted("header", "client_ip", "path", "method", "query", "jwt_claim", "constant"); got != want {
		t.Errorf("key types: schema %s, parser %s", got, want)
	}
}
