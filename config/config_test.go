package config

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/floodgate-proxy/floodgate/algorithm"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
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
			if p.Response.Status != 429 || p.Response.Headers != HeadersIETF || p.FailureMode != FailOpen || p.Cost.Value != 1 {
				t.Errorf("policy defaults: %+v", p)
			}
			if mk := p.MissingKey; mk.Action != MissingFallback || len(mk.Fallback) != 1 || mk.Fallback[0].Type != KeyClientIP || mk.Fallback[0].TrustedHops != 0 {
				t.Errorf("a missing key part falls back to the client IP by default: %+v", mk)
			}
			if p.Compiled == nil {
				t.Error("not compiled")
			}
		}},
		{name: "gcra and token_bucket", json: `{"policies":[{"name":"g","key":[{"type":"path"}],"strategy":"gcra","limits":[{"requests":"100/m"},{"rate":2.5,"window":4}]},
			{"name":"t","key":[{"type":"path"}],"strategy":"token_bucket","limits":[{"rate":0.5,"burst":3}]}]}`, check: func(t *testing.T, c *Config) {
			g, tb := c.Policies[0], c.Policies[1]
			if g.Strategy != algorithm.GCRA || g.Compiled.IntervalUs(0) != 600000 || g.Compiled.IntervalUs(1) != 400000 || g.Limits[1].Quota != 10 {
				t.Errorf("gcra: %+v", g.Limits)
			}
			if tb.Strategy != algorithm.TokenBucket || tb.Limits[0].Quota != 3 || tb.Limits[0].WindowMs != 6000 || tb.Compiled.IntervalUs(0) != 2000000 {
				t.Errorf("token bucket: %+v", tb.Limits)
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
			"key":[{"type":"header","name":"X-Api-Key"},{"type":"client_ip","trusted_hops":1},{"type":"jwt_claim","claim":"sub","metadata":"payload"},{"type":"query","name":"tenant"},{"type":"path"},{"type":"method"}],
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
				if p.Key[0].Name != "x-api-key" || p.Key[1].TrustedHops != 1 || !p.Key[1].UseRemoteAddress || p.Key[2].Metadata != "payload" {
					t.Errorf("key %+v", p.Key)
				}
				if fb := p.MissingKey.Fallback; p.MissingKey.Action != MissingFallback || len(fb) != 1 || fb[0].Value != "anonymous" || p.Strategy != algorithm.Suppressed || p.HardLimitFactor != 1.5 {
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
		{name: "token from the VM's environment", json: `{"redis":{"cluster":"c","token_env":"FLOODGATE_HELPER_TOKEN"},
			"policies":[{"name":"p","key":[{"type":"path"}],"limits":[{"rate":1}],"backend":"redis"}]}`,
			check: func(t *testing.T, c *Config) {
				if c.Redis.TokenEnv != "FLOODGATE_HELPER_TOKEN" || c.Redis.Token != "" {
					t.Errorf("redis %+v", c.Redis)
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
		{name: "token bucket limits take rate and burst only", json: `{"policies":[{"name":"a","key":[{"type":"path"}],"strategy":"token_bucket",
			"limits":[{"rate":1,"burst":5,"window":10,"group_ms":100},{"requests":"10/s"},{"rate":0,"burst":0},{"rate":1e-9,"burst":3}]}]}`,
			want: []string{`policies[0].limits[0].window: does not apply to token_bucket: its limits are {"rate": tokens per second, "burst": tokens}`,
				`policies[0].limits[0].group_ms: does not apply to token_bucket: its limits are {"rate": tokens per second, "burst": tokens}`,
				`policies[0].limits[1].requests: does not apply to token_bucket: its limits are {"rate": tokens per second, "burst": tokens}`,
				"policies[0].limits[1].rate: is required (tokens per second)", "policies[0].limits[1].burst: is required (the bucket's size in tokens)",
				"policies[0].limits[2].rate: must be > 0", "policies[0].limits[2].burst: must be between 1 and 2147483647",
				"policies[0].limits[3]: burst 3 at rate 1e-09 per second takes 3000000000 s to refill, more than 2678400 s"}},
		{name: "burst outside token_bucket, group_ms with gcra", json: `{"policies":[{"name":"a","key":[{"type":"path"}],"limits":[{"rate":1,"burst":5}]},
			{"name":"b","key":[{"type":"path"}],"strategy":"gcra","limits":[{"requests":"10/s","group_ms":100}],"hard_limit_factor":2}]}`,
			want: []string{"policies[0].limits[0].burst: applies to the token_bucket strategy only",
				"policies[1].hard_limit_factor: applies to the suppressed strategy only",
				"policies[1].limits[0].group_ms: applies to the absolute and suppressed strategies only: gcra counts no buckets"}},
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
			want: []string{"redis.cluster: must not be empty", "redis.token_env: required (or token): the helper's bearer token", "redis.timeout_ms: must be between 1 and 10000", "redis.breaker.failures: must be between 1 and 1000"}},
		{name: "token and token_env", json: `{"redis":{"cluster":"c","token":"t","token_env":"FLOODGATE_HELPER_TOKEN"},"policies":[{"name":"a","key":[{"type":"path"}],"limits":[{"rate":1}]}]}`,
			want: []string{"redis.token_env: give token or token_env, not both"}},
		{name: "token_env not a variable name", json: `{"redis":{"cluster":"c","token_env":"FLOODGATE TOKEN"},"policies":[{"name":"a","key":[{"type":"path"}],"limits":[{"rate":1}]}]}`,
			want: []string{"redis.token_env: must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*, at most 128)"}},
		{name: "empty token", json: `{"redis":{"cluster":"c","token":""},"policies":[{"name":"a","key":[{"type":"path"}],"limits":[{"rate":1}]}]}`,
			want: []string{"redis.token: must not be empty"}},
		{name: "duplicate and bad names", json: `{"policies":[{"name":"a","key":[{"type":"path"}],"limits":[{"rate":1}]},{"name":"a","key":[{"type":"path"}],"limits":[{"rate":1}]},{"name":"b c","key":[{"type":"path"}],"limits":[{"rate":1}]}]}`,
			want: []string{`policies[1].name: "a" is already the name of policies[0]`, "policies[2].name: must be 1 to 64 letters, digits, '_', '.' or '-'"}},
		{name: "key problems", json: `{"policies":[{"name":"a","key":[{"type":"header"},{"type":"ip"},{"type":"client_ip","trusted_hops":-1},{"type":"path","name":"x"}],"limits":[{"rate":1}]}]}`,
			want: []string{"policies[0].key[0].name: must be a string", "policies[0].key[1].type: must be one of header, client_ip, path, method, query, jwt_claim, constant",
				"policies[0].key[2].trusted_hops: must be between 0 and 16", "policies[0].key[3].name: unknown field"}},
		{name: "match problems", json: pol(`,"match":{"path":{"prefix":"/a","regex":"("},"methods":[],"headers":[{"nam":"x"}]}`),
			want: []string{"policies[0].match.path.regex: invalid regular expression: error parsing regexp: missing closing ): `(`",
				"policies[0].match.path: must have exactly one of prefix, exact, regex", "policies[0].match.methods: must be an array of 1 to 256 strings",
				"policies[0].match.headers[0].nam: unknown field", "policies[0].match.headers[0].name: must be a string"}},
		{name: "missing key and cost", json: pol(`,"missing_key":{"action":"fallback","value":1},"cost":{"header":"x-cost","default":5,"max":2}`),
			want: []string{"policies[0].missing_key.value: must be a string", "policies[0].cost.default: must not exceed max (2)"}},
		{name: "jwt claim without its source", json: `{"policies":[{"name":"a","key":[{"type":"jwt_claim","claim":"sub"}],"limits":[{"rate":1}]}]}`,
			want: []string{`policies[0].key[0]: needs "metadata" (the payload_in_metadata name under which Envoy's jwt_authn put the payload it verified; Istio's RequestAuthentication: "payload") or "header" (a bearer token read WITHOUT verification): behind jwt_authn the token is usually removed from the request (forward: false), so say where the claim comes from`}},
		{name: "jwt claim with both sources", json: `{"policies":[{"name":"a","key":[{"type":"jwt_claim","claim":"sub","header":"authorization","metadata":"payload"},{"type":"jwt_claim","claim":"sub","metadata":""}],"limits":[{"rate":1}]}]}`,
			want: []string{"policies[0].key[0]: give one of metadata, header", "policies[0].key[1].metadata: must not be empty"}},
		{name: "client_ip settings without hops", json: `{"policies":[{"name":"a","key":[{"type":"client_ip","use_remote_address":false},{"type":"client_ip","trusted_hops":1,"use_remote_address":false,"skip_xff_append":true}],"limits":[{"rate":1}]}]}`,
			want: []string{"policies[0].key[0].use_remote_address: applies with trusted_hops only: without it the key is source.address, the client address Envoy computed",
				"policies[0].key[1].skip_xff_append: applies with use_remote_address true only: without it Envoy never appends to X-Forwarded-For"}},
		{name: "missing key actions", json: `{"policies":[{"name":"a","key":[{"type":"path"}],"limits":[{"rate":1}],"missing_key":{"action":"skip","key":[{"type":"path"}],"status":401}},
			{"name":"b","key":[{"type":"path"}],"limits":[{"rate":1}],"missing_key":{"action":"fallback","key":[],"value":"x"}},
			{"name":"c","key":[{"type":"path"}],"limits":[{"rate":1}],"missing_key":{"action":"reject","status":200}},
			{"name":"d","key":[{"type":"path"}],"limits":[{"rate":1}],"missing_key":{"action":"ignore"}}]}`,
			want: []string{"policies[0].missing_key.key: applies to the fallback action only", "policies[0].missing_key.status: applies to the reject action only",
				"policies[1].missing_key: give one of key, value", "policies[2].missing_key.status: must be between 400 and 599",
				"policies[3].missing_key.action: must be one of fallback, skip, reject"}},
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
	headers  map[string]string
	source   string
	metadata []byte
}

func (m mapRequest) Header(name string) (string, bool) { v, ok := m.headers[name]; return v, ok }
func (m mapRequest) SourceAddress() string             { return m.source }
func (m mapRequest) Metadata() []byte                  { return m.metadata }

func jwt(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return "Bearer " + enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(payload)) + ".sig"
}

// jwtAuthnMetadata is the dynamic metadata Envoy's jwt_authn leaves after verifying a token whose
// payload is payload, with payload_in_metadata: name.
func jwtAuthnMetadata(t testing.TB, name, payload string) []byte {
	t.Helper()
	ps := &structpb.Struct{}
	if err := ps.UnmarshalJSON([]byte(payload)); err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(&corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		JWTAuthnFilter: {Fields: map[string]*structpb.Value{name: structpb.NewStructValue(ps)}}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// keyOf is the key a policy named p builds from parts.
func keyOf(parts ...string) []byte { return keyNamed("p", parts...) }

// fallbackOf is the fallback key policy p builds from parts.
func fallbackOf(parts ...string) []byte { return keyNamed("p\x00fallback", parts...) }

func keyNamed(name string, parts ...string) []byte {
	key := appendPart(nil, name)
	for _, part := range parts {
		key = appendPart(key, part)
	}
	return key
}

func parsePolicy(t *testing.T, key, extra string) *Policy {
	t.Helper()
	c, err := Parse([]byte(`{"policies":[{"name":"p","key":` + key + `,"limits":[{"rate":1}]` + extra + `}]}`))
	if err != nil {
		t.Fatal(err)
	}
	return c.Policies[0]
}

func TestKeysAndMatches(t *testing.T) {
	req := mapRequest{source: "[2001:db8::1]:5555", headers: map[string]string{
		":path": "/api/v1/items?tenant=acme&x=1", ":method": "GET", ":authority": "api.example.com:8443",
		"x-api-key": "k1", "x-forwarded-for": "1.1.1.1, 2.2.2.2,3.3.3.3", "authorization": jwt(`{"sub":"alice","org":{"id":42}}`),
	}, metadata: jwtAuthnMetadata(t, "payload", `{"sub":"verified-alice","org":{"id":7,"paid":true},"https://example.com/tenant":"t1","roles":["a"]}`)}
	tests := []struct {
		name, key, extra string
		want             []byte // nil when the request is skipped or rejected
		missing          bool   // a part was missing
	}{
		{name: "header", key: `[{"type":"header","name":"X-Api-Key"}]`, want: keyOf("k1")},
		{name: "peer ip strips the port", key: `[{"type":"client_ip"}]`, want: keyOf("2001:db8::1")},
		{name: "path without query, method", key: `[{"type":"path"},{"type":"method"}]`, want: keyOf("/api/v1/items", "GET")},
		{name: "query", key: `[{"type":"query","name":"tenant"}]`, want: keyOf("acme")},
		{name: "unverified jwt claim, nested", key: `[{"type":"jwt_claim","claim":"sub","header":"authorization"},{"type":"jwt_claim","claim":"org.id","header":"Authorization"}]`, want: keyOf("alice", "42")},
		{name: "verified jwt claims", key: `[{"type":"jwt_claim","claim":"sub","metadata":"payload"},{"type":"jwt_claim","claim":"org.id","metadata":"payload"},{"type":"jwt_claim","claim":"org.paid","metadata":"payload"}]`,
			want: keyOf("verified-alice", "7", "true")},
		{name: "verified claim with a dot in its name", key: `[{"type":"jwt_claim","claim":"https://example\\.com/tenant","metadata":"payload"}]`, want: keyOf("t1")},
		{name: "verified claim that is a list is missing", key: `[{"type":"jwt_claim","claim":"roles","metadata":"payload"}]`, extra: `,"missing_key":{"action":"skip"}`, missing: true},
		{name: "verified payload under another name is missing", key: `[{"type":"jwt_claim","claim":"sub","metadata":"https://issuer"}]`, extra: `,"missing_key":{"action":"skip"}`, missing: true},
		{name: "missing header skipped", key: `[{"type":"header","name":"x-none"}]`, extra: `,"missing_key":{"action":"skip"}`, missing: true},
		{name: "missing header rejected", key: `[{"type":"header","name":"x-none"}]`, extra: `,"missing_key":{"action":"reject"}`, missing: true},
		{name: "missing header falls back to the client ip by default", key: `[{"type":"header","name":"x-none"}]`, want: fallbackOf("2001:db8::1"), missing: true},
		{name: "missing header falls back to a shared key", key: `[{"type":"header","name":"x-none"}]`, extra: `,"missing_key":{"action":"fallback","value":"anon"}`, want: fallbackOf("anon"), missing: true},
		{name: "missing header falls back to other parts", key: `[{"type":"header","name":"x-none"}]`, extra: `,"missing_key":{"action":"fallback","key":[{"type":"query","name":"tenant"},{"type":"method"}]}`,
			want: fallbackOf("acme", "GET"), missing: true},
		{name: "a missing fallback part shares one key", key: `[{"type":"header","name":"x-none"}]`, extra: `,"missing_key":{"action":"fallback","key":[{"type":"header","name":"x-nope"}]}`,
			want: keyNamed("p\x00missing"), missing: true},
		{name: "constant", key: `[{"type":"constant","value":"all"}]`, want: keyOf("all")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := parsePolicy(t, tc.key, tc.extra)
			key, missing := p.BuildKey(req, nil)
			if (missing != nil) != tc.missing {
				t.Fatalf("missing part %v, want missing %v", missing, tc.missing)
			}
			if tc.want == nil {
				if key != nil {
					t.Fatalf("key %q, want none", key)
				}
				return
			}
			if !bytes.Equal(key, tc.want) {
				t.Fatalf("key %q, want %q", key, tc.want)
			}
		})
	}
	long := mapRequest{headers: map[string]string{"x-api-key": strings.Repeat("z", 10000)}}
	if key, missing := parsePolicy(t, `[{"type":"header","name":"x-api-key"}]`, "").BuildKey(long, nil); missing != nil || len(key) > MaxKeyBytes {
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
		if got := parsePolicy(t, `[{"type":"method"}]`, `,"match":`+m.match).Matches(req); got != m.want {
			t.Errorf("match %s = %v, want %v", m.match, got, m.want)
		}
	}
}

// TestClientIPCountsHopsLikeEnvoy: with trusted_hops the key is the address Envoy would take as the
// trusted client address with the same xff_num_trusted_hops (the rules and worked examples of
// Envoy's docs, configuration/http/http_conn_man/headers "x-forwarded-for"), whatever Envoy
// appended to X-Forwarded-For before the plugin ran.
func TestClientIPCountsHopsLikeEnvoy(t *testing.T) {
	tests := []struct {
		name, client, peer, xff, want string
	}{
		// One load balancer (10.9.9.9) in front of an Envoy with use_remote_address: true, which
		// appended the balancer to what the balancer sent: each client keeps its own key.
		{name: "one proxy, client 1", client: `"trusted_hops":1`, peer: "10.9.9.9:40000", xff: "1.1.1.1,10.9.9.9", want: "1.1.1.1"},
		{name: "one proxy, client 2", client: `"trusted_hops":1`, peer: "10.9.9.9:40000", xff: "2.2.2.2,10.9.9.9", want: "2.2.2.2"},
		{name: "one proxy, forged x-forwarded-for", client: `"trusted_hops":1`, peer: "10.9.9.9:40000", xff: "6.6.6.6, 3.3.3.3,10.9.9.9", want: "3.3.3.3"},
		{name: "one proxy bypassed: the peer", client: `"trusted_hops":1`, peer: "4.4.4.4:1", xff: "4.4.4.4", want: "4.4.4.4"},
		{name: "two proxies (Envoy docs example 3)", client: `"trusted_hops":2`, peer: "192.0.2.5:1", xff: "203.0.113.128, 203.0.113.10, 203.0.113.1,192.0.2.5", want: "203.0.113.10"},
		{name: "skip_xff_append: nothing appended", client: `"trusted_hops":1,"skip_xff_append":true`, peer: "10.9.9.9:1", xff: "1.1.1.1", want: "1.1.1.1"},
		{name: "use_remote_address false (Envoy docs example 4)", client: `"trusted_hops":2,"use_remote_address":false`, peer: "10.11.12.13:1",
			xff: "203.0.113.128, 203.0.113.10, 203.0.113.1, 192.0.2.5", want: "203.0.113.10"},
		{name: "entry not an address: the peer", client: `"trusted_hops":1`, peer: "10.9.9.9:1", xff: "unknown,10.9.9.9", want: "10.9.9.9"},
		{name: "IPv6 entry in canonical form", client: `"trusted_hops":1`, peer: "10.9.9.9:1", xff: " 2001:DB8:0::1 ,10.9.9.9", want: "2001:db8::1"},
		{name: "zone refused: the peer", client: `"trusted_hops":1`, peer: "10.9.9.9:1", xff: "fe80::1%eth0,10.9.9.9", want: "10.9.9.9"},
		{name: "no x-forwarded-for: the peer", client: `"trusted_hops":3`, peer: "[2001:db8::7]:1", want: "2001:db8::7"},
		{name: "without hops: source.address, which Envoy computed", client: ``, peer: "198.51.100.1:0", xff: "1.1.1.1,10.9.9.9", want: "198.51.100.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sep := ""
			if tc.client != "" {
				sep = ","
			}
			p := parsePolicy(t, `[{"type":"client_ip"`+sep+tc.client+`}]`, `,"missing_key":{"action":"skip"}`)
			r := mapRequest{source: tc.peer, headers: map[string]string{}}
			if tc.xff != "" {
				r.headers["x-forwarded-for"] = tc.xff
			}
			if key, _ := p.BuildKey(r, nil); !bytes.Equal(key, keyOf(tc.want)) {
				t.Fatalf("key %q, want %q", key, keyOf(tc.want))
			}
		})
	}
}

// TestMalformedCredentialsDoNotEscape: a token that does not decode is a missing part, and by
// default the request is then counted by client IP with the policy's limits, never unlimited.
func TestMalformedCredentialsDoNotEscape(t *testing.T) {
	p := parsePolicy(t, `[{"type":"jwt_claim","claim":"sub","header":"authorization"}]`, "")
	for _, token := range []string{
		"", "Bearer", "Bearer !!!", "Bearer a.b", "Bearer a.!!!.c", "Bearer " + strings.TrimPrefix(jwt(`not json`), "Bearer "),
		jwt(`{"other":"claim"}`), "Basic dXNlcjpwYXNz", "Bearer " + strings.Repeat("a", maxTokenBytes),
	} {
		r := mapRequest{source: "203.0.113.9:1234", headers: map[string]string{}}
		if token != "" {
			r.headers["authorization"] = token
		}
		key, missing := p.BuildKey(r, nil)
		if missing == nil || !bytes.Equal(key, fallbackOf("203.0.113.9")) {
			t.Errorf("token %.40q: key %q (missing %v), want the client IP's fallback key", token, key, missing)
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
