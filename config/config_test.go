package config

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/floodgate-proxy/floodgate/algorithm"
)

const minimal = `{"policies":[{"name":"p","key":[{"type":"client_ip"}],"limits":[{"rate":10}]}]}`

func TestParseValid(t *testing.T) {
	tests := []struct {
		name  string
		json  string
		check func(t *testing.T, c *Config)
	}{
		{name: "minimal with defaults", json: minimal, check: func(t *testing.T, c *Config) {
			p := c.Policies[0]
			if c.SharedData.Prefix != "floodgate" || c.SharedData.Slots != 65536 {
				t.Errorf("shared data defaults: %+v", c.SharedData)
			}
			if p.Strategy != algorithm.Absolute || p.Limits[0].Quota != 10 || p.Limits[0].WindowMs != 1000 || p.Limits[0].GroupMs != 100 {
				t.Errorf("limit defaults: %+v", p.Limits[0])
			}
			if p.Response.Status != 429 || p.Response.Headers != HeadersIETF || p.FailureMode != FailOpen || !p.MissingKey.Skip || p.Cost.Value != 1 {
				t.Errorf("policy defaults: %+v", p)
			}
			if p.Compiled == nil {
				t.Error("not compiled")
			}
		}},
		{name: "requests forms", json: `{"policies":[{"name":"p","key":[{"type":"constant","value":"all"}],
			"limits":[{"requests":"100/m"},{"requests":"10/30s"},{"requests":"1000/h"},{"requests":"5/2d"}]}]}`, check: func(t *testing.T, c *Config) {
			want := []struct{ q, w int64 }{{100, 60000}, {10, 30000}, {1000, 3600000}, {5, 172800000}}
			for i, w := range want {
				if l := c.Policies[0].Limits[i]; l.Quota != w.q || l.WindowMs != w.w {
					t.Errorf("limit %d: %+v, want quota %d window %d", i, l, w.q, w.w)
				}
			}
		}},
		{name: "full policy", json: `{"shared_data":{"prefix":"gw1","slots":1024},"policies":[{"name":"api.v1-key",
			"match":{"path":{"regex":"^/api/v[0-9]+/"},"methods":["get","POST"],"hosts":["API.example.com"],"headers":[{"name":"X-Api-Key"},{"name":"x-internal","present":false}]},
			"key":[{"type":"header","name":"X-Api-Key"},{"type":"client_ip","trusted_hops":1},{"type":"jwt_claim","claim":"sub"},{"type":"query","name":"tenant"},{"type":"path"},{"type":"method"}],
			"missing_key":{"action":"fallback","value":"anonymous"},
			"limits":[{"rate":5.5,"window":10,"group_ms":250}],"strategy":"suppressed","hard_limit_factor":1.5,
			"cost":{"header":"x-cost","default":2,"max":50},"shadow":true,
			"response":{"status":503,"body":"busy","problem_json":true,"headers":"both"},"backend":"local","failure_mode":"closed"}]}`,
			check: func(t *testing.T, c *Config) {
				p := c.Policies[0]
				if c.SharedData.Prefix != "gw1" || c.SharedData.Slots != 1024 {
					t.Errorf("shared data %+v", c.SharedData)
				}
				if p.Match.PathRegex == nil || p.Match.Methods[0] != "GET" || p.Match.Hosts[0] != "api.example.com" || p.Match.Headers[0].Name != "x-api-key" || p.Match.Headers[1].Present {
					t.Errorf("match %+v", p.Match)
				}
				if p.Key[0].Name != "x-api-key" || p.Key[1].TrustedHops != 1 || p.Key[2].Header != "authorization" {
					t.Errorf("key %+v", p.Key)
				}
				if p.MissingKey.Skip || p.MissingKey.Fallback != "anonymous" || p.Strategy != algorithm.Suppressed || p.HardLimitFactor != 1.5 {
					t.Errorf("policy %+v", p)
				}
				if p.Limits[0].Quota != 55 || p.Limits[0].GroupMs != 250 || p.Cost.Header != "x-cost" || p.Cost.Value != 2 || p.Cost.Max != 50 {
					t.Errorf("limits/cost %+v %+v", p.Limits, p.Cost)
				}
				if !p.Shadow || p.Response.Status != 503 || !p.Response.ProblemJSON || p.Response.Headers != HeadersBoth || p.FailureMode != FailClosed {
					t.Errorf("answer %+v", p)
				}
			}},
		{name: "redis backend", json: `{"redis":{"cluster":"floodgate-redis-helper","token":"t","timeout_ms":80,"breaker":{"failures":3,"cooldown_ms":2000}},
			"policies":[{"name":"p","key":[{"type":"path"}],"limits":[{"rate":1}],"backend":"redis","failure_mode":"local"}]}`,
			check: func(t *testing.T, c *Config) {
				r, p := c.Redis, c.Policies[0]
				if r.Cluster != "floodgate-redis-helper" || r.Authority != r.Cluster || r.Token != "t" || r.TimeoutMs != 80 || r.BreakerFailures != 3 || r.BreakerCooldownMs != 2000 {
					t.Errorf("redis %+v", r)
				}
				if p.Backend != BackendRedis || p.FailureMode != FailLocal {
					t.Errorf("policy %+v", p)
				}
			}},
		{name: "redis backend falls back to local limiting by default", json: `{"redis":{"cluster":"c","token":"t"},
			"policies":[{"name":"p","key":[{"type":"path"}],"limits":[{"rate":1}],"backend":"redis"}]}`,
			check: func(t *testing.T, c *Config) {
				if p := c.Policies[0]; p.FailureMode != FailLocal {
					t.Errorf("failure mode %q, want local", p.FailureMode)
				}
			}},
		{name: "hybrid backend", json: `{"redis":{"cluster":"c","token":"t","sync_interval_ms":250},
			"policies":[{"name":"p","key":[{"type":"path"}],"limits":[{"rate":1}],"backend":"hybrid"},
				{"name":"q","key":[{"type":"path"}],"limits":[{"rate":1}],"backend":"hybrid","failure_mode":"open"}]}`,
			check: func(t *testing.T, c *Config) {
				// 4 intervals would be 1000 ms: kept under half the 1 s window.
				if c.Redis.SyncIntervalMs != 250 || c.Redis.TimeoutMs != 50 || c.Redis.SyncTimeoutMs != 499 {
					t.Errorf("redis %+v", c.Redis)
				}
				if p := c.Policies[0]; p.Backend != BackendHybrid || p.FailureMode != FailLocal {
					t.Errorf("hybrid falls back to local limiting by default: %+v", p)
				}
				if q := c.Policies[1]; q.FailureMode != FailOpen {
					t.Errorf("failure_mode open: %+v", q)
				}
			}},
		{name: "long window groups coarsely by default", json: `{"policies":[{"name":"p","key":[{"type":"method"}],"limits":[{"requests":"10000/d"}]}]}`,
			check: func(t *testing.T, c *Config) {
				if l := c.Policies[0].Limits[0]; l.GroupMs != 86400 || l.Buckets() != 1000 {
					t.Errorf("limit %+v", l)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestParseInvalid(t *testing.T) {
	pol := func(fields string) string {
		return `{"policies":[{"name":"p","key":[{"type":"client_ip"}],"limits":[{"rate":10}]` + fields + `}]}`
	}
	tests := []struct {
		name string
		json string
		want []string // every line of the error, in order
	}{
		{name: "empty", json: ``, want: []string{"the configuration is empty: at least one policy is required"}},
		{name: "not JSON", json: `{"policies":`, want: []string{"not valid JSON: line 1, column 13: want a value, found end of input"}},
		{name: "a syntax error names its line and column", json: "{\n  \"policies\": [\n    {\"name\": \"a\",}\n  ]\n}",
			want: []string{`not valid JSON: line 3, column 18: want a field name in double quotes, found '}'`}},
		{name: "too large", json: `{"policies":[` + strings.Repeat(`1,`, MaxConfigBytes/2) + `1]}`,
			want: []string{fmt.Sprintf("the configuration is %d bytes, more than %d", 2*(MaxConfigBytes/2)+16, MaxConfigBytes)}},
		{name: "too deep", json: strings.Repeat("[", 40) + strings.Repeat("]", 40),
			want: []string{"not valid JSON: line 1, column 34: nested more than 32 levels deep"}},
		{name: "a field given twice means two things: refused", json: `{"policies":[{"name":"a","key":[{"type":"path"}],"limits":[{"rate":1}],"name":"b"}]}`,
			want: []string{"policies[0].name: given more than once"}},
		{name: "a number as a string says so", json: `{"policies":[{"name":"a","key":[{"type":"path"}],"limits":[{"rate":"10"}]}]}`,
			want: []string{"policies[0].limits[0].rate: must be a number"}},
		{name: "header names are HTTP tokens", json: pol(`,"match":{"headers":[{"name":"X-Api-Key "}]},"cost":{"header":"x cost"}`)[:0] +
			`{"policies":[{"name":"a","key":[{"type":"header","name":"X-Api-Key "},{"type":"header","name":""}],"limits":[{"rate":1}],"match":{"headers":[{"name":"a:b"}]},"cost":{"header":"x cost"}}]}`,
			want: []string{`policies[0].match.headers[0].name: "a:b" is not a header name (letters, digits and !#$%&'*+-.^_` + "`" + `|~ only)`,
				`policies[0].key[0].name: "X-Api-Key " is not a header name (letters, digits and !#$%&'*+-.^_` + "`" + `|~ only)`,
				`policies[0].key[1].name: "" is not a header name (letters, digits and !#$%&'*+-.^_` + "`" + `|~ only)`,
				`policies[0].cost.header: "x cost" is not a header name (letters, digits and !#$%&'*+-.^_` + "`" + `|~ only)`}},
		{name: "no policies", json: `{}`, want: []string{"policies: at least one policy is required"}},
		{name: "unknown top-level field", json: `{"polices":[]}`, want: []string{"polices: unknown field", "policies: at least one policy is required"}},
		{name: "rate not positive", json: `{"policies":[{"name":"a","key":[{"type":"path"}],"limits":[{"rate":1},{"rate":0}]}]}`,
			want: []string{"policies[0].limits[1].rate: must be > 0"}},
		{name: "quota of zero", json: `{"policies":[{"name":"a","key":[{"type":"path"}],"limits":[{"rate":0.5}]}]}`,
			want: []string{"policies[0].limits[0]: rate 0.5 per second over 1 s gives a quota of 0: raise rate or window"}},
		{name: "both rate and requests", json: pol(`,"x":1`)[:0] + `{"policies":[{"name":"a","key":[{"type":"path"}],"limits":[{"rate":1,"requests":"1/s"}]}]}`,
			want: []string{"policies[0].limits[0]: must have exactly one of rate, requests"}},
		{name: "bad requests form", json: `{"policies":[{"name":"a","key":[{"type":"path"}],"limits":[{"requests":"100 per minute"}]}]}`,
			want: []string{`policies[0].limits[0].requests: must look like "100/m" or "10/30s" (units s, m, h, d)`}},
		{name: "too many buckets", json: `{"policies":[{"name":"a","key":[{"type":"path"}],"limits":[{"requests":"100/h","group_ms":100}]}]}`,
			want: []string{"policies[0].limits[0]: invalid limit: window 3600000 ms in buckets of 100 ms needs 36000 buckets, more than 1000: raise group_ms to at least 3600"}},
		{name: "unknown policy field and bad values", json: pol(`,"stratgy":"absolute","shadow":"yes","response":{"status":200,"headers":"x"}`),
			want: []string{"policies[0].stratgy: unknown field", "policies[0].shadow: must be true or false",
				"policies[0].response.status: must be between 400 and 599", "policies[0].response.headers: must be one of ietf, legacy, both, none"}},
		{name: "hard factor with absolute", json: pol(`,"hard_limit_factor":2`), want: []string{"policies[0].hard_limit_factor: applies to the suppressed strategy only"}},
		{name: "unknown backend", json: pol(`,"backend":"memcached"`), want: []string{`policies[0].backend: must be one of local, redis, hybrid`}},
		{name: "hybrid backend without the redis section", json: pol(`,"backend":"hybrid"`), want: []string{`policies[0].backend: "hybrid" needs the top-level redis section`}},
		{name: "hybrid window too short for the timeout", json: `{"redis":{"cluster":"c","token":"t","timeout_ms":500,"sync_interval_ms":5},
			"policies":[{"name":"p","key":[{"type":"path"}],"limits":[{"rate":100},{"requests":"1000/m"}],"backend":"hybrid"}]}`,
			want: []string{"redis.sync_interval_ms: must be between 10 and 10000",
				`policies[0].backend: "hybrid" needs every window longer than twice the longer of redis.timeout_ms and redis.sync_timeout_ms (500 ms); the shortest is 1000 ms`}},
		{name: "hybrid window too short for the sync timeout", json: `{"redis":{"cluster":"c","token":"t","sync_timeout_ms":600},
			"policies":[{"name":"p","key":[{"type":"path"}],"limits":[{"rate":100}],"backend":"hybrid"}]}`,
			want: []string{`policies[0].backend: "hybrid" needs every window longer than twice the longer of redis.timeout_ms and redis.sync_timeout_ms (600 ms); the shortest is 1000 ms`}},
		{name: "redis backend without its section", json: pol(`,"backend":"redis"`), want: []string{`policies[0].backend: "redis" needs the top-level redis section`}},
		{name: "local fallback on a local policy", json: pol(`,"failure_mode":"local"`), want: []string{`policies[0].failure_mode: "local" applies to the redis and hybrid backends only`}},
		{name: "redis section problems", json: `{"redis":{"cluster":"","timeout_ms":0,"breaker":{"failures":0}},"policies":[{"name":"a","key":[{"type":"path"}],"limits":[{"rate":1}]}]}`,
			want: []string{"redis.cluster: must not be empty", "redis.token: must be a string", "redis.timeout_ms: must be between 1 and 10000", "redis.breaker.failures: must be between 1 and 1000"}},
		{name: "duplicate and bad names", json: `{"policies":[{"name":"a","key":[{"type":"path"}],"limits":[{"rate":1}]},{"name":"a","key":[{"type":"path"}],"limits":[{"rate":1}]},{"name":"b c","key":[{"type":"path"}],"limits":[{"rate":1}]}]}`,
			want: []string{`policies[1].name: "a" is already the name of policies[0]`, "policies[2].name: must be 1 to 64 letters, digits, '_', '.' or '-'"}},
		{name: "key problems", json: `{"policies":[{"name":"a","key":[{"type":"header"},{"type":"ip"},{"type":"client_ip","trusted_hops":-1},{"type":"path","name":"x"}],"limits":[{"rate":1}]}]}`,
			want: []string{"policies[0].key[0].name: must be a string", "policies[0].key[1].type: must be one of header, client_ip, path, method, query, jwt_claim, constant",
				"policies[0].key[2].trusted_hops: must be between 0 and 16", "policies[0].key[3].name: unknown field"}},
		{name: "match problems", json: pol(`,"match":{"path":{"prefix":"/a","regex":"("},"methods":[],"headers":[{"nam":"x"}]}`),
			want: []string{"policies[0].match.path.regex: invalid regular expression: error parsing regexp: missing closing ): `(`",
				"policies[0].match.path: must have exactly one of prefix, exact, regex", "policies[0].match.methods: must be an array of 1 to 256 strings",
				"policies[0].match.headers[0].nam: unknown field", "policies[0].match.headers[0].name: must be a string"}},
		{name: "missing key and cost", json: pol(`,"missing_key":{"action":"fallback"},"cost":{"header":"x-cost","default":5,"max":2}`),
			want: []string{"policies[0].missing_key.value: must be a string", "policies[0].cost.default: must not exceed max (2)"}},
		{name: "shared data", json: `{"shared_data":{"slots":0,"prefix":""},"policies":[{"name":"a","key":[{"type":"path"}],"limits":[{"rate":1}]}]}`,
			want: []string{"shared_data.prefix: must be 1 to 64 characters", "shared_data.slots: must be between 1 and 4194304"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.json))
			if err == nil {
				t.Fatal("accepted")
			}
			if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("errors:\n%s\nwant:\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}
}

type mapRequest struct {
	headers map[string]string
	source  string
}

func (m mapRequest) Header(name string) (string, bool) { v, ok := m.headers[name]; return v, ok }
func (m mapRequest) SourceAddress() string             { return m.source }

func jwt(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return "Bearer " + enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(payload)) + ".sig"
}

func TestKeysAndMatches(t *testing.T) {
	parse := func(key, extra string) *Policy {
		c, err := Parse([]byte(`{"policies":[{"name":"p","key":` + key + `,"limits":[{"rate":1}]` + extra + `}]}`))
		if err != nil {
			t.Fatal(err)
		}
		return c.Policies[0]
	}
	req := mapRequest{source: "[2001:db8::1]:5555", headers: map[string]string{
		":path": "/api/v1/items?tenant=acme&x=1", ":method": "GET", ":authority": "api.example.com:8443",
		"x-api-key": "k1", "x-forwarded-for": "1.1.1.1, 2.2.2.2,3.3.3.3", "authorization": jwt(`{"sub":"alice","org":{"id":42}}`),
	}}
	tests := []struct {
		name, key, extra string
		want             string // the key's parts joined by |, "" when skipped
	}{
		{name: "header", key: `[{"type":"header","name":"X-Api-Key"}]`, want: "k1"},
		{name: "peer ip strips the port", key: `[{"type":"client_ip"}]`, want: "2001:db8::1"},
		{name: "xff 1 hop", key: `[{"type":"client_ip","trusted_hops":1}]`, want: "3.3.3.3"},
		{name: "xff 3 hops", key: `[{"type":"client_ip","trusted_hops":3}]`, want: "1.1.1.1"},
		{name: "xff too short is missing", key: `[{"type":"client_ip","trusted_hops":4}]`, want: ""},
		{name: "path without query, method", key: `[{"type":"path"},{"type":"method"}]`, want: "/api/v1/items|GET"},
		{name: "query", key: `[{"type":"query","name":"tenant"}]`, want: "acme"},
		{name: "jwt claim, nested", key: `[{"type":"jwt_claim","claim":"sub"},{"type":"jwt_claim","claim":"org.id"}]`, want: "alice|42"},
		{name: "missing header skipped", key: `[{"type":"header","name":"x-none"}]`, want: ""},
		{name: "missing header falls back", key: `[{"type":"header","name":"x-none"}]`, extra: `,"missing_key":{"action":"fallback","value":"anon"}`, want: "\x00fallback:anon"},
		{name: "constant", key: `[{"type":"constant","value":"all"}]`, want: "all"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := parse(tc.key, tc.extra)
			key, ok := p.BuildKey(req, nil)
			if tc.want == "" {
				if ok {
					t.Fatalf("key %q, want skipped", key)
				}
				return
			}
			want := appendPart(nil, "p")
			for _, part := range strings.Split(tc.want, "|") {
				want = appendPart(want, part)
			}
			if !ok || !bytes.Equal(key, want) {
				t.Fatalf("key %q, want %q", key, want)
			}
		})
	}
	long := mapRequest{headers: map[string]string{"x-api-key": strings.Repeat("z", 10000)}}
	if key, ok := parse(`[{"type":"header","name":"x-api-key"}]`, "").BuildKey(long, nil); !ok || len(key) > MaxKeyBytes {
		t.Fatalf("a hostile header gave a key of %d bytes", len(key))
	}
	matches := []struct {
		match string
		want  bool
	}{
		{`{"path":{"prefix":"/api/"}}`, true},
		{`{"path":{"exact":"/api/v1/items"}}`, true},
		{`{"path":{"regex":"^/api/v[0-9]+/items$"}}`, true},
		{`{"path":{"prefix":"/admin"}}`, false},
		{`{"methods":["post"]}`, false},
		{`{"hosts":["API.example.com"],"methods":["get"]}`, true},
		{`{"headers":[{"name":"x-api-key"},{"name":"x-debug","present":false}]}`, true},
		{`{"headers":[{"name":"x-debug"}]}`, false},
	}
	for _, m := range matches {
		if got := parse(`[{"type":"method"}]`, `,"match":`+m.match).Matches(req); got != m.want {
			t.Errorf("match %s = %v, want %v", m.match, got, m.want)
		}
	}
}

func TestCostOf(t *testing.T) {
	c, err := Parse([]byte(`{"policies":[{"name":"p","key":[{"type":"method"}],"limits":[{"rate":100}],"cost":{"header":"x-cost","default":3,"max":10}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Policies[0]
	for _, tc := range []struct {
		header string
		want   int64
	}{{"", 3}, {"5", 5}, {" 7 ", 7}, {"0", 3}, {"-4", 3}, {"abc", 3}, {"99", 10}} {
		r := mapRequest{headers: map[string]string{}}
		if tc.header != "" {
			r.headers["x-cost"] = tc.header
		}
		if got := p.CostOf(r); got != tc.want {
			t.Errorf("x-cost %q: cost %d, want %d", tc.header, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(`{"policies":[{"name":"a","key":[{"type":"jwt_claim","claim":"sub"}],"limits":[{"requests":"5/2d"}],"strategy":"suppressed","hard_limit_factor":3}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err == nil && (len(c.Policies) == 0 || c.Policies[0].Compiled == nil) {
			t.Fatal("accepted without a compiled policy")
		}
	})
}

func TestStripPort(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.0.0.1:8080", "10.0.0.1"}, {"10.0.0.1", "10.0.0.1"}, {"[2001:db8::1]:443", "2001:db8::1"},
		{"2001:db8::1", "2001:db8::1"}, {"example.com:80", "example.com"}, {"", ""},
	} {
		if got := stripPort(tc.in); got != tc.want {
			t.Errorf("stripPort(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
