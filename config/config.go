// Package config reads floodgate's plugin configuration: the JSON given to Envoy as
// PluginConfig.configuration (Istio: WasmPlugin pluginConfig).
//
// Parse validates everything in one place and reports every problem with its JSON path, one per
// line ("policies[2].limits[0].rate: must be > 0"); unknown fields are errors. It uses
// github.com/tidwall/gjson, which is cheap in wasm. The schema is documented in README.md
// ("Configuration reference") and schema.json.
package config

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/tidwall/gjson"
)

// Bounds of a configuration.
const (
	MaxPolicies = 32
	MaxKeyParts = 8
	MaxLimits   = 8
	MaxSlots    = 1 << 22
	// MaxListItems bounds a list of methods, hosts or header matches.
	MaxListItems  = 256
	DefaultSlots  = 65536
	DefaultPrefix = "floodgate"
)

// Config is a validated configuration.
type Config struct {
	SharedData SharedData
	// Redis is where policies with backend "redis" decide and "hybrid" ones sync; nil when no redis
	// section is given.
	Redis    *Redis
	Policies []*Policy
}

// Redis is the helper cluster in front of Redis (or an Upstash-compatible endpoint).
type Redis struct {
	// Cluster is the Envoy cluster of the helper (Istio: outbound|PORT||HOST).
	Cluster string
	// Authority is the :authority of the calls (default: the cluster name).
	Authority string
	// Token is the bearer token of the helper, written in the configuration (redis.token): whoever
	// reads the configuration (Istio: the WasmPlugin; Envoy: its config dump) reads the token.
	Token string
	// TokenEnv (redis.token_env) names the variable of the VM's environment that holds the token
	// instead (Envoy: vm_config.environment_variables; Istio: WasmPlugin vmConfig.env). Exactly
	// one of Token and TokenEnv is set; the plugin reads the variable when it loads.
	TokenEnv string
	// TimeoutMs bounds one call; a request waits at most that long for its decision.
	TimeoutMs uint32
	// BreakerFailures consecutive failures open the breaker for BreakerCooldownMs, during which
	// no call is made and the failure mode applies; all workers of the proxy share the breaker.
	BreakerFailures   uint32
	BreakerCooldownMs int64
	// SyncIntervalMs is the tick on which hybrid policies sync with Redis.
	SyncIntervalMs uint32
	// SyncTimeoutMs bounds one sync call (off the request path: a batch of many keys may take
	// longer than a decision). Default: 4 sync intervals, at least TimeoutMs, and under half the
	// shortest window of the hybrid policies.
	SyncTimeoutMs  uint32
	syncTimeoutSet bool
}

// BackendKind is where a policy's state lives.
type BackendKind string

// Backends.
const (
	// BackendLocal keeps the state in the proxy's shared data: exact for one proxy.
	BackendLocal BackendKind = "local"
	// BackendRedis decides every request in Redis through the helper: exact across proxies.
	BackendRedis BackendKind = "redis"
	// BackendHybrid decides locally on quota Redis reserves for each proxy, synced on a tick.
	BackendHybrid BackendKind = "hybrid"
)

// FailureMode is what a policy does with a request whose state cannot be read or written (Redis
// down, slow or answering garbage, its breaker open, shared-data contention).
type FailureMode string

// Failure modes.
const (
	// FailOpen lets the request through undecided.
	FailOpen FailureMode = "open"
	// FailClosed answers 503.
	FailClosed FailureMode = "closed"
	// FailLocal decides on this proxy's shared data (redis and hybrid backends): the limit then
	// holds per proxy rather than across proxies.
	FailLocal FailureMode = "local"
)

// SharedData sizes the local store.
type SharedData struct {
	// Prefix starts every shared-data key.
	Prefix string
	// Slots is the number of shared-data entries each policy may create.
	Slots uint32
}

// Strategy names.
const (
	StrategyAbsolute    = "absolute"
	StrategySuppressed  = "suppressed"
	StrategyGCRA        = "gcra"
	StrategyTokenBucket = "token_bucket"
)

var strategies = map[string]algorithm.Strategy{StrategyAbsolute: algorithm.Absolute, StrategySuppressed: algorithm.Suppressed,
	StrategyGCRA: algorithm.GCRA, StrategyTokenBucket: algorithm.TokenBucket}

// Policy is one named rate-limiting rule.
type Policy struct {
	Name       string
	Match      Match
	Key        []KeyPart
	MissingKey MissingKey
	Limits     []algorithm.Limit
	Strategy   algorithm.Strategy
	// HardLimitFactor is h of the suppressed strategy (1 for absolute).
	HardLimitFactor float64
	Cost            Cost
	Shadow          bool
	// Counting: when requests count (on arrival, or by the upstream's status) and which statuses
	// clear a key.
	Counting Counting
	// BlockMs: a key rejected once is rejected for that long, whatever its usage (0: no block).
	BlockMs  int64
	Response Response
	// Backend is where the state lives.
	Backend BackendKind
	// FailureMode applies when the state cannot be read or written: FailLocal by default for the
	// redis and hybrid backends (limiting goes on per proxy), FailOpen for the local backend.
	FailureMode FailureMode
	// Compiled is the algorithm policy built from Limits and Strategy.
	Compiled *algorithm.Policy
	// Tiers are the sets of limits a request may get: Tiers[0] is the default (the policy's
	// Limits and Compiled; nil Compiled when it is unlimited), the others are chosen by the value
	// of TierBy. A policy without tiers has its limits as its one tier.
	Tiers  []*Tier
	TierBy *KeyPart
}

// Match selects the requests a policy applies to; every field given must hold.
type Match struct {
	PathPrefix, PathExact string
	PathRegex             *regexp.Regexp
	Methods               []string // upper case
	Hosts                 []string // lower case, without port
	Headers               []HeaderMatch
}

// HeaderMatch requires a header to be present (or absent).
type HeaderMatch struct {
	Name    string
	Present bool
}

// Cost is how many units a request counts for.
type Cost struct {
	// Value is the constant cost, or the default when Header is set and unusable.
	Value int64
	// Header, when set, carries the cost; values above Max count as Max.
	Header string
	Max    int64
}

// HeaderStyle says which rate-limit headers answers carry.
type HeaderStyle uint8

// Header styles.
const (
	HeadersIETF HeaderStyle = iota
	HeadersLegacy
	HeadersBoth
	HeadersNone
)

// Response is how a policy answers a rejected request.
type Response struct {
	Status      uint32
	Body        string
	ProblemJSON bool
	Headers     HeaderStyle
}

// FieldError is one problem of a configuration.
type FieldError struct {
	Path, Msg string
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Errors is every problem of a configuration; Error renders one per line.
type Errors []FieldError

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, fe := range e {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

type parser struct{ errs Errors }

func (p *parser) errf(path, format string, args ...any) {
	p.errs = append(p.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// object checks that v is an object with only the known fields, each given once (see unique).
func (p *parser) object(v gjson.Result, path string, known ...string) bool {
	if !v.IsObject() {
		p.errf(path, "must be an object")
		return false
	}
	var unknown []string
	v.ForEach(func(k, _ gjson.Result) bool {
		if name := k.String(); !slices.Contains(known, name) && !slices.Contains(unknown, name) {
			unknown = append(unknown, name)
		}
		return true
	})
	sort.Strings(unknown)
	for _, f := range unknown {
		p.errf(join(path, f), "unknown field")
	}
	p.unique(v, path)
	return true
}

// unique refuses the fields of the object v given more than once. (gjson reads the first of
// duplicate fields and most other JSON tools the last: a configuration with both would mean one
// thing here and another in every tool that shows it.)
func (p *parser) unique(v gjson.Result, path string) {
	seen := map[string]bool{}
	var dup []string
	v.ForEach(func(k, _ gjson.Result) bool {
		name := k.String()
		if seen[name] && !slices.Contains(dup, name) {
			dup = append(dup, name)
		}
		seen[name] = true
		return true
	})
	for _, f := range dup {
		p.errf(join(path, f), "given more than once")
	}
}

// boundedLen counts the elements of the array v up to hi+1, without building the list, so that
// an oversized array costs next to nothing to refuse.
func boundedLen(v gjson.Result, hi int) int {
	n := 0
	v.ForEach(func(_, _ gjson.Result) bool {
		n++
		return n <= hi
	})
	return n
}

// number reads a JSON number.
func (p *parser) number(v gjson.Result, path string) (float64, bool) {
	if v.Type != gjson.Number {
		p.errf(path, "must be a number")
		return 0, false
	}
	return v.Num, true
}

// headerName reads a header name: an HTTP token (RFC 9110 tchar), or a pseudo-header (":path"),
// lower-cased as Envoy hands headers to filters. A name with a space or a colon inside could
// never match a request header, so it is an error rather than a policy that never applies.
func (p *parser) headerName(v gjson.Result, path string) (string, bool) {
	s, ok := p.str(v, path)
	if !ok {
		return "", false
	}
	name := strings.TrimPrefix(s, ":")
	valid := name != ""
	for i := 0; i < len(name) && valid; i++ {
		c := name[i]
		valid = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
	}
	if !valid {
		p.errf(path, "%q is not a header name (letters, digits and !#$%%&'*+-.^_`|~ only)", s)
		return "", false
	}
	return strings.ToLower(s), true
}

func (p *parser) str(v gjson.Result, path string) (string, bool) {
	if v.Type != gjson.String {
		p.errf(path, "must be a string")
		return "", false
	}
	return v.Str, true
}

func (p *parser) integer(v gjson.Result, path string, lo, hi int64) (int64, bool) {
	if v.Type != gjson.Number || v.Num != float64(int64(v.Num)) {
		p.errf(path, "must be an integer")
		return 0, false
	}
	n := int64(v.Num)
	if n < lo || n > hi {
		p.errf(path, "must be between %d and %d", lo, hi)
		return 0, false
	}
	return n, true
}

func (p *parser) boolean(v gjson.Result, path string) bool {
	if !v.IsBool() {
		p.errf(path, "must be true or false")
		return false
	}
	return v.Bool()
}

func (p *parser) oneOf(v gjson.Result, path string, values ...string) (string, bool) {
	s, ok := p.str(v, path)
	if !ok {
		return "", false
	}
	for _, want := range values {
		if s == want {
			return s, true
		}
	}
	p.errf(path, "must be one of %s", strings.Join(values, ", "))
	return "", false
}

var policyName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Parse validates a configuration and returns it, or every problem it has (an Errors).
func Parse(data []byte) (*Config, error) {
	p := &parser{}
	cfg := p.parse(data)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	defaultSyncTimeout(cfg)
	return cfg, nil
}

func (p *parser) parse(data []byte) *Config {
	if len(strings.TrimSpace(string(data))) == 0 {
		p.errf("", "the configuration is empty: at least one policy is required")
		return nil
	}
	if len(data) > MaxConfigBytes {
		p.errf("", "the configuration is %d bytes, more than %d", len(data), MaxConfigBytes)
		return nil
	}
	if err := checkSyntax(data); err != nil {
		p.errf("", "%v", err)
		return nil
	}
	root := gjson.ParseBytes(data)
	if !p.object(root, "", "shared_data", "redis", "policies") {
		return nil
	}
	cfg := &Config{SharedData: SharedData{Prefix: DefaultPrefix, Slots: DefaultSlots}}
	if sd := root.Get("shared_data"); sd.Exists() && p.object(sd, "shared_data", "prefix", "slots") {
		if v := sd.Get("prefix"); v.Exists() {
			if s, ok := p.str(v, "shared_data.prefix"); ok {
				if s == "" || len(s) > 64 {
					p.errf("shared_data.prefix", "must be 1 to 64 characters")
				}
				cfg.SharedData.Prefix = s
			}
		}
		if v := sd.Get("slots"); v.Exists() {
			if n, ok := p.integer(v, "shared_data.slots", 1, MaxSlots); ok {
				cfg.SharedData.Slots = uint32(n)
			}
		}
	}
	if rv := root.Get("redis"); rv.Exists() {
		cfg.Redis = p.redis(rv, "redis")
	}
	policies := root.Get("policies")
	switch {
	case !policies.Exists():
		p.errf("policies", "at least one policy is required")
	case !policies.IsArray():
		p.errf("policies", "must be an array")
	case boundedLen(policies, MaxPolicies) == 0 || boundedLen(policies, MaxPolicies) > MaxPolicies:
		p.errf("policies", "must hold 1 to %d policies", MaxPolicies)
	default:
		list := policies.Array()
		seen := map[string]int{}
		for i, v := range list {
			path := index("policies", i)
			pol := p.policy(v, path)
			if pol == nil {
				continue
			}
			if pol.Backend != BackendLocal && cfg.Redis == nil {
				p.errf(join(path, "backend"), "%q needs the top-level redis section", pol.Backend)
			}
			if w := pol.shortestWindowMs(); pol.Backend == BackendHybrid && cfg.Redis != nil && w > 0 {
				// A reservation must be spent (for at most half the shortest window, see
				// plugin/backend_hybrid.go) and its answer awaited while Redis still counts it.
				t := cfg.Redis.TimeoutMs
				if cfg.Redis.syncTimeoutSet {
					t = max(t, cfg.Redis.SyncTimeoutMs)
				}
				if w <= 2*int64(t) {
					p.errf(join(path, "backend"), "\"hybrid\" needs every window longer than twice the longer of redis.timeout_ms and redis.sync_timeout_ms (%d ms); the shortest is %d ms", t, w)
				}
			}
			if j, dup := seen[pol.Name]; dup && pol.Name != "" {
				p.errf(join(path, "name"), "%q is already the name of policies[%d]", pol.Name, j)
			}
			seen[pol.Name] = i
			cfg.Policies = append(cfg.Policies, pol)
		}
	}
	return cfg
}

var policyFields = []string{"name", "match", "key", "missing_key", "limits", "tiers", "strategy", "hard_limit_factor",
	"cost", "shadow", "response", "backend", "failure_mode", "count", "reset", "block_for"}

func (p *parser) policy(v gjson.Result, path string) *Policy {
	if !p.object(v, path, policyFields...) {
		return nil
	}
	pol := &Policy{Strategy: algorithm.Absolute, HardLimitFactor: 1, Cost: Cost{Value: 1},
		Response: Response{Status: 429, Body: "rate limit exceeded\n"}, Backend: BackendLocal}
	if n := v.Get("name"); !n.Exists() {
		p.errf(join(path, "name"), "is required")
	} else if s, ok := p.str(n, join(path, "name")); ok {
		if !policyName.MatchString(s) {
			p.errf(join(path, "name"), "must be 1 to 64 letters, digits, '_', '.' or '-'")
		}
		pol.Name = s
	}
	if m := v.Get("match"); m.Exists() {
		p.match(m, join(path, "match"), &pol.Match)
	}
	pol.Key = p.keyParts(v.Get("key"), join(path, "key"))
	pol.MissingKey = p.missingKey(v.Get("missing_key"), join(path, "missing_key"))
	if s := v.Get("strategy"); s.Exists() {
		if name, ok := p.oneOf(s, join(path, "strategy"), StrategyAbsolute, StrategySuppressed, StrategyGCRA, StrategyTokenBucket); ok {
			pol.Strategy = strategies[name]
		}
	}
	if h := v.Get("hard_limit_factor"); h.Exists() {
		hp := join(path, "hard_limit_factor")
		switch {
		case h.Type != gjson.Number:
			p.number(h, hp)
		case pol.Strategy != algorithm.Suppressed:
			p.errf(hp, "applies to the suppressed strategy only")
		case h.Num < 1 || h.Num > 1000:
			p.errf(hp, "must be between 1 and 1000")
		default:
			pol.HardLimitFactor = h.Num
		}
	}
	if b := v.Get("block_for"); b.Exists() {
		pol.BlockMs = p.blockFor(b, join(path, "block_for"))
	}
	if t := v.Get("tiers"); t.Exists() {
		if v.Get("limits").Exists() {
			p.errf(join(path, "limits"), "does not go with tiers: give the limits of requests without a listed tier as tiers.default")
		}
		p.tiers(t, join(path, "tiers"), pol)
	} else {
		tier := &Tier{}
		tier.Limits, tier.Compiled = p.limits(v.Get("limits"), join(path, "limits"), pol)
		pol.Tiers = []*Tier{tier}
	}
	pol.Limits, pol.Compiled = pol.Tiers[0].Limits, pol.Tiers[0].Compiled
	if c := v.Get("cost"); c.Exists() {
		p.cost(c, join(path, "cost"), &pol.Cost)
	}
	if s := v.Get("shadow"); s.Exists() {
		pol.Shadow = p.boolean(s, join(path, "shadow"))
	}
	if r := v.Get("response"); r.Exists() {
		p.response(r, join(path, "response"), &pol.Response)
	}
	if b := v.Get("backend"); b.Exists() {
		if name, ok := p.oneOf(b, join(path, "backend"), string(BackendLocal), string(BackendRedis), string(BackendHybrid)); ok {
			pol.Backend = BackendKind(name)
		}
	}
	pol.FailureMode = FailOpen
	if pol.Backend != BackendLocal {
		pol.FailureMode = FailLocal
	}
	if f := v.Get("failure_mode"); f.Exists() {
		if mode, ok := p.oneOf(f, join(path, "failure_mode"), string(FailOpen), string(FailClosed), string(FailLocal)); ok {
			pol.FailureMode = FailureMode(mode)
			if pol.FailureMode == FailLocal && pol.Backend == BackendLocal {
				p.errf(join(path, "failure_mode"), "\"local\" applies to the redis and hybrid backends only")
			}
		}
	}
	p.counting(v, path, pol)
	return pol
}

// envName is the form of redis.token_env.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

func (p *parser) redis(v gjson.Result, path string) *Redis {
	if !p.object(v, path, "cluster", "authority", "token", "token_env", "timeout_ms", "breaker", "sync_interval_ms", "sync_timeout_ms") {
		return nil
	}
	r := &Redis{TimeoutMs: 100, BreakerFailures: 5, BreakerCooldownMs: 5000, SyncIntervalMs: 100}
	if s, ok := p.str(v.Get("cluster"), join(path, "cluster")); ok && s != "" {
		r.Cluster, r.Authority = s, s
	} else if ok {
		p.errf(join(path, "cluster"), "must not be empty")
	}
	if a := v.Get("authority"); a.Exists() {
		if s, ok := p.str(a, join(path, "authority")); ok {
			r.Authority = s
		}
	}
	token, env := v.Get("token"), v.Get("token_env")
	switch {
	case token.Exists() && env.Exists():
		p.errf(join(path, "token_env"), "give token or token_env, not both")
	case env.Exists():
		if s, ok := p.str(env, join(path, "token_env")); ok && envName.MatchString(s) {
			r.TokenEnv = s
		} else if ok {
			p.errf(join(path, "token_env"), "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*, at most 128)")
		}
	case token.Exists():
		if s, ok := p.str(token, join(path, "token")); ok && s != "" {
			r.Token = s
		} else if ok {
			p.errf(join(path, "token"), "must not be empty")
		}
	default:
		p.errf(join(path, "token_env"), "required (or token): the helper's bearer token")
	}
	if t := v.Get("timeout_ms"); t.Exists() {
		if n, ok := p.integer(t, join(path, "timeout_ms"), 1, 10000); ok {
			r.TimeoutMs = uint32(n)
		}
	}
	if t := v.Get("sync_interval_ms"); t.Exists() {
		if n, ok := p.integer(t, join(path, "sync_interval_ms"), 10, 10000); ok {
			r.SyncIntervalMs = uint32(n)
		}
	}
	r.SyncTimeoutMs = max(r.TimeoutMs, 4*r.SyncIntervalMs) // see defaultSyncTimeout
	if t := v.Get("sync_timeout_ms"); t.Exists() {
		if n, ok := p.integer(t, join(path, "sync_timeout_ms"), 1, 60000); ok {
			r.SyncTimeoutMs, r.syncTimeoutSet = uint32(n), true
		}
	}
	if b := v.Get("breaker"); b.Exists() && p.object(b, join(path, "breaker"), "failures", "cooldown_ms") {
		if f := b.Get("failures"); f.Exists() {
			if n, ok := p.integer(f, join(path, "breaker.failures"), 1, 1000); ok {
				r.BreakerFailures = uint32(n)
			}
		}
		if c := b.Get("cooldown_ms"); c.Exists() {
			if n, ok := p.integer(c, join(path, "breaker.cooldown_ms"), 100, 3600000); ok {
				r.BreakerCooldownMs = n
			}
		}
	}
	return r
}

func (p *parser) match(v gjson.Result, path string, m *Match) {
	if !p.object(v, path, "path", "methods", "hosts", "headers") {
		return
	}
	if pv := v.Get("path"); pv.Exists() && p.object(pv, join(path, "path"), "prefix", "exact", "regex") {
		n := 0
		pv.ForEach(func(k, val gjson.Result) bool {
			n++
			fp := join(join(path, "path"), k.String())
			s, ok := p.str(val, fp)
			if !ok {
				return true
			}
			switch k.String() {
			case "prefix":
				m.PathPrefix = s
			case "exact":
				m.PathExact = s
			case "regex":
				re, err := regexp.Compile(s)
				if err != nil {
					p.errf(fp, "invalid regular expression: %v", err)
				}
				m.PathRegex = re
			}
			return true
		})
		if n != 1 {
			p.errf(join(path, "path"), "must have exactly one of prefix, exact, regex")
		}
	}
	m.Methods = p.strings(v.Get("methods"), join(path, "methods"), strings.ToUpper)
	m.Hosts = p.strings(v.Get("hosts"), join(path, "hosts"), strings.ToLower)
	if hv := v.Get("headers"); hv.Exists() {
		if !hv.IsArray() || boundedLen(hv, MaxListItems) > MaxListItems {
			p.errf(join(path, "headers"), "must be an array of at most %d header matches", MaxListItems)
			return
		}
		for i, h := range hv.Array() {
			hp := index(join(path, "headers"), i)
			if !p.object(h, hp, "name", "present") {
				continue
			}
			hm := HeaderMatch{Present: true}
			if name, ok := p.headerName(h.Get("name"), join(hp, "name")); ok {
				hm.Name = name
			}
			if pr := h.Get("present"); pr.Exists() {
				hm.Present = p.boolean(pr, join(hp, "present"))
			}
			m.Headers = append(m.Headers, hm)
		}
	}
}

func (p *parser) strings(v gjson.Result, path string, norm func(string) string) []string {
	if !v.Exists() {
		return nil
	}
	if n := boundedLen(v, MaxListItems); !v.IsArray() || n == 0 || n > MaxListItems {
		p.errf(path, "must be an array of 1 to %d strings", MaxListItems)
		return nil
	}
	var out []string
	for i, s := range v.Array() {
		if str, ok := p.str(s, index(path, i)); ok {
			out = append(out, norm(str))
		}
	}
	return out
}

var requestsForm = regexp.MustCompile(`^([0-9]+)/([0-9]*)(s|m|h|d)$`)

var durationForm = regexp.MustCompile(`^([0-9]{1,9})(s|m|h|d)$`)

var unitSeconds = map[string]int64{"s": 1, "m": 60, "h": 3600, "d": 86400}

// limits parses an array of limits decided together under pol's strategy and compiles them.
func (p *parser) limits(v gjson.Result, path string, pol *Policy) ([]algorithm.Limit, *algorithm.Policy) {
	if !v.Exists() {
		p.errf(path, "is required")
		return nil, nil
	}
	if n := boundedLen(v, MaxLimits); !v.IsArray() || n == 0 || n > MaxLimits {
		p.errf(path, "must be an array of 1 to %d limits", MaxLimits)
		return nil, nil
	}
	ok := true
	var limits []algorithm.Limit
	for i, lv := range v.Array() {
		lp := index(path, i)
		l, good := p.limit(lv, lp, pol.Strategy)
		ok = ok && good
		limits = append(limits, l)
	}
	if !ok {
		return limits, nil
	}
	compiled, err := algorithm.NewPolicyOpts(algorithm.PolicyOptions{Strategy: pol.Strategy, HardLimitFactor: pol.HardLimitFactor, BlockMs: pol.BlockMs}, limits...)
	if err != nil {
		p.errf(path, "%v", err)
		return limits, nil
	}
	return limits, compiled
}

func (p *parser) limit(v gjson.Result, path string, strategy algorithm.Strategy) (algorithm.Limit, bool) {
	if !p.object(v, path, "rate", "window", "requests", "group_ms", "burst") {
		return algorithm.Limit{}, false
	}
	if strategy == algorithm.TokenBucket {
		return p.bucketLimit(v, path)
	}
	if v.Get("burst").Exists() {
		p.errf(join(path, "burst"), "applies to the token_bucket strategy only")
		return algorithm.Limit{}, false
	}
	var group int64
	if g := v.Get("group_ms"); g.Exists() && strategy == algorithm.GCRA {
		p.errf(join(path, "group_ms"), "applies to the absolute and suppressed strategies only: gcra counts no buckets")
		return algorithm.Limit{}, false
	} else if g.Exists() {
		n, ok := p.integer(g, join(path, "group_ms"), 1, 86400000)
		if !ok {
			return algorithm.Limit{}, false
		}
		group = n
	}
	rate, requests := v.Get("rate"), v.Get("requests")
	var (
		l   algorithm.Limit
		err error
	)
	switch {
	case rate.Exists() == requests.Exists():
		p.errf(path, "must have exactly one of rate, requests")
		return l, false
	case requests.Exists():
		if v.Get("window").Exists() {
			p.errf(join(path, "window"), "applies to rate only: requests carries its period")
			return l, false
		}
		s, ok := p.str(requests, join(path, "requests"))
		if !ok {
			return l, false
		}
		m := requestsForm.FindStringSubmatch(s)
		if m == nil {
			p.errf(join(path, "requests"), "must look like \"100/m\" or \"10/30s\" (units s, m, h, d)")
			return l, false
		}
		var n, mult int64
		fmt.Sscan(m[1], &n)
		mult = 1
		if m[2] != "" {
			fmt.Sscan(m[2], &mult)
		}
		l, err = algorithm.PerPeriod(n, mult*unitSeconds[m[3]], group)
	default:
		r, ok := p.number(rate, join(path, "rate"))
		if !ok {
			return l, false
		}
		if r <= 0 {
			p.errf(join(path, "rate"), "must be > 0")
			return l, false
		}
		window := int64(1)
		if w := v.Get("window"); w.Exists() {
			n, ok := p.integer(w, join(path, "window"), 1, 31*86400)
			if !ok {
				return l, false
			}
			window = n
		}
		l, err = algorithm.NewLimit(rate.Num, window, group)
	}
	if err != nil {
		p.errf(path, "%v", err)
		return l, false
	}
	return l, true
}

// bucketLimit reads a token_bucket limit: {"rate": tokens per second, "burst": tokens}.
func (p *parser) bucketLimit(v gjson.Result, path string) (algorithm.Limit, bool) {
	ok := true
	for _, f := range []string{"window", "requests", "group_ms"} {
		if v.Get(f).Exists() {
			p.errf(join(path, f), "does not apply to token_bucket: its limits are {\"rate\": tokens per second, \"burst\": tokens}")
			ok = false
		}
	}
	rate, burst := v.Get("rate"), v.Get("burst")
	switch {
	case !rate.Exists():
		p.errf(join(path, "rate"), "is required (tokens per second)")
		ok = false
	case rate.Type != gjson.Number || rate.Num <= 0:
		p.errf(join(path, "rate"), "must be > 0")
		ok = false
	}
	var b int64
	if !burst.Exists() {
		p.errf(join(path, "burst"), "is required (the bucket's size in tokens)")
		ok = false
	} else if n, good := p.integer(burst, join(path, "burst"), 1, algorithm.MaxQuota); good {
		b = n
	} else {
		ok = false
	}
	if !ok {
		return algorithm.Limit{}, false
	}
	l, err := algorithm.NewTokenBucket(rate.Num, b)
	if err != nil {
		p.errf(path, "%v", err)
		return l, false
	}
	return l, true
}

func (p *parser) cost(v gjson.Result, path string, c *Cost) {
	if v.Type == gjson.Number {
		if n, ok := p.integer(v, path, 1, algorithm.MaxQuota); ok {
			c.Value = n
		}
		return
	}
	if !p.object(v, path, "header", "default", "max") {
		return
	}
	if name, ok := p.headerName(v.Get("header"), join(path, "header")); ok {
		c.Header = name
	}
	c.Max = 1000
	if d := v.Get("default"); d.Exists() {
		if n, ok := p.integer(d, join(path, "default"), 1, algorithm.MaxQuota); ok {
			c.Value = n
		}
	}
	if m := v.Get("max"); m.Exists() {
		if n, ok := p.integer(m, join(path, "max"), 1, algorithm.MaxQuota); ok {
			c.Max = n
		}
	}
	if c.Value > c.Max {
		p.errf(join(path, "default"), "must not exceed max (%d)", c.Max)
	}
}

func (p *parser) response(v gjson.Result, path string, r *Response) {
	if !p.object(v, path, "status", "body", "problem_json", "headers") {
		return
	}
	if s := v.Get("status"); s.Exists() {
		if n, ok := p.integer(s, join(path, "status"), 400, 599); ok {
			r.Status = uint32(n)
		}
	}
	if b := v.Get("body"); b.Exists() {
		if s, ok := p.str(b, join(path, "body")); ok {
			if len(s) > 4096 {
				p.errf(join(path, "body"), "must be at most 4096 bytes")
			}
			r.Body = s
		}
	}
	if pj := v.Get("problem_json"); pj.Exists() {
		r.ProblemJSON = p.boolean(pj, join(path, "problem_json"))
	}
	if h := v.Get("headers"); h.Exists() {
		if s, ok := p.oneOf(h, join(path, "headers"), "ietf", "legacy", "both", "none"); ok {
			r.Headers = map[string]HeaderStyle{"ietf": HeadersIETF, "legacy": HeadersLegacy, "both": HeadersBoth, "none": HeadersNone}[s]
		}
	}
}

// defaultSyncTimeout keeps the default sync timeout under half the shortest window of the hybrid
// policies (but never under the call timeout, which config refuses then).
func defaultSyncTimeout(cfg *Config) {
	if cfg.Redis == nil || cfg.Redis.syncTimeoutSet {
		return
	}
	for _, pol := range cfg.Policies {
		if w := pol.shortestWindowMs(); pol.Backend == BackendHybrid && w > 0 {
			half := uint32(min(w/2-1, math.MaxUint32))
			cfg.Redis.SyncTimeoutMs = max(min(cfg.Redis.SyncTimeoutMs, half), cfg.Redis.TimeoutMs)
		}
	}
}
