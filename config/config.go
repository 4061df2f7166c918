// Package config reads floodgate's plugin configuration: the JSON given to Envoy as
// PluginConfig.configuration (Istio: WasmPlugin pluginConfig).
//
// Parse validates everything in one place and reports every problem with its JSON path, one per
// line ("policies[2].limits[0].rate: must be > 0"); unknown fields are errors. It uses
// github.com/tidwall/gjson, which is cheap in wasm. The schema is documented in REFERENCE.md and
// schema.json.
package config

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/tidwall/gjson"
)

// Bounds of a configuration.
const (
	MaxPolicies   = 32
	MaxKeyParts   = 8
	MaxLimits     = 8
	MaxSlots      = 1 << 22
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
	// Token is the bearer token of the helper.
	Token string
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

// Backends.
const (
	BackendLocal  = "local"
	BackendRedis  = "redis"
	BackendHybrid = "hybrid"
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
	StrategyAbsolute   = "absolute"
	StrategySuppressed = "suppressed"
)

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
	Response        Response
	// Backend is where the state lives: BackendLocal, BackendRedis or BackendHybrid.
	Backend string
	// FailOpen says what happens when the state cannot be read or written: admit (true) or
	// answer 503 (false).
	FailOpen bool
	// FallbackLocal (failure_mode "local", redis and hybrid backends, the default of hybrid)
	// decides with local shared data while Redis cannot be reached.
	FallbackLocal bool
	// Compiled is the algorithm policy built from Limits and Strategy.
	Compiled *algorithm.Policy
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

// object checks that v is an object with only the known fields.
func (p *parser) object(v gjson.Result, path string, known ...string) bool {
	if !v.IsObject() {
		p.errf(path, "must be an object")
		return false
	}
	var unknown []string
	v.ForEach(func(k, _ gjson.Result) bool {
		for _, f := range known {
			if k.String() == f {
				return true
			}
		}
		unknown = append(unknown, k.String())
		return true
	})
	sort.Strings(unknown)
	for _, f := range unknown {
		p.errf(join(path, f), "unknown field")
	}
	return true
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
	if !gjson.ValidBytes(data) {
		p.errf("", "not valid JSON")
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
	default:
		list := policies.Array()
		if len(list) == 0 || len(list) > MaxPolicies {
			p.errf("policies", "must hold 1 to %d policies", MaxPolicies)
		}
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
			if pol.Backend == BackendHybrid && cfg.Redis != nil && pol.Compiled != nil {
				// A reservation must be spent (for at most half the shortest window, see
				// plugin/hybrid.go) and its answer awaited while Redis still counts it.
				t := cfg.Redis.TimeoutMs
				if cfg.Redis.syncTimeoutSet {
					t = max(t, cfg.Redis.SyncTimeoutMs)
				}
				if w := pol.Compiled.ShortestWindowMs(); w <= 2*int64(t) {
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

var policyFields = []string{"name", "match", "key", "missing_key", "limits", "strategy", "hard_limit_factor",
	"cost", "shadow", "response", "backend", "failure_mode"}

func (p *parser) policy(v gjson.Result, path string) *Policy {
	if !p.object(v, path, policyFields...) {
		return nil
	}
	pol := &Policy{Strategy: algorithm.Absolute, HardLimitFactor: 1, Cost: Cost{Value: 1},
		Response: Response{Status: 429, Body: "rate limit exceeded\n"}, FailOpen: true, Backend: BackendLocal}
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
		if name, ok := p.oneOf(s, join(path, "strategy"), StrategyAbsolute, StrategySuppressed); ok && name == StrategySuppressed {
			pol.Strategy = algorithm.Suppressed
		}
	}
	if h := v.Get("hard_limit_factor"); h.Exists() {
		hp := join(path, "hard_limit_factor")
		switch {
		case h.Type != gjson.Number:
			p.errf(hp, "must be a number")
		case pol.Strategy != algorithm.Suppressed:
			p.errf(hp, "applies to the suppressed strategy only")
		case h.Num < 1 || h.Num > 1000:
			p.errf(hp, "must be between 1 and 1000")
		default:
			pol.HardLimitFactor = h.Num
		}
	}
	p.limits(v.Get("limits"), join(path, "limits"), pol)
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
		if name, ok := p.str(b, join(path, "backend")); ok {
			switch name {
			case BackendLocal, BackendRedis:
				pol.Backend = name
			case BackendHybrid:
				pol.Backend = name
				pol.FailOpen, pol.FallbackLocal = false, true
			default:
				p.errf(join(path, "backend"), "must be one of local, redis, hybrid")
			}
		}
	}
	if f := v.Get("failure_mode"); f.Exists() {
		if mode, ok := p.oneOf(f, join(path, "failure_mode"), "open", "closed", "local"); ok {
			pol.FailOpen = mode == "open"
			pol.FallbackLocal = mode == "local"
			if mode == "local" && pol.Backend == BackendLocal {
				p.errf(join(path, "failure_mode"), "\"local\" applies to the redis and hybrid backends only")
			}
		}
	}
	return pol
}

func (p *parser) redis(v gjson.Result, path string) *Redis {
	if !p.object(v, path, "cluster", "authority", "token", "timeout_ms", "breaker", "sync_interval_ms", "sync_timeout_ms") {
		return nil
	}
	r := &Redis{TimeoutMs: 50, BreakerFailures: 5, BreakerCooldownMs: 5000, SyncIntervalMs: 100}
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
	if s, ok := p.str(v.Get("token"), join(path, "token")); ok && s != "" {
		r.Token = s
	} else if ok {
		p.errf(join(path, "token"), "must not be empty")
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
		if !hv.IsArray() {
			p.errf(join(path, "headers"), "must be an array")
			return
		}
		for i, h := range hv.Array() {
			hp := index(join(path, "headers"), i)
			if !p.object(h, hp, "name", "present") {
				continue
			}
			hm := HeaderMatch{Present: true}
			if name, ok := p.str(h.Get("name"), join(hp, "name")); ok && name != "" {
				hm.Name = strings.ToLower(name)
			} else if ok {
				p.errf(join(hp, "name"), "must not be empty")
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
	if !v.IsArray() || len(v.Array()) == 0 {
		p.errf(path, "must be a non-empty array of strings")
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

var unitSeconds = map[string]int64{"s": 1, "m": 60, "h": 3600, "d": 86400}

func (p *parser) limits(v gjson.Result, path string, pol *Policy) {
	if !v.Exists() {
		p.errf(path, "is required")
		return
	}
	if !v.IsArray() || len(v.Array()) == 0 || len(v.Array()) > MaxLimits {
		p.errf(path, "must be an array of 1 to %d limits", MaxLimits)
		return
	}
	ok := true
	for i, lv := range v.Array() {
		lp := index(path, i)
		l, good := p.limit(lv, lp)
		ok = ok && good
		pol.Limits = append(pol.Limits, l)
	}
	if !ok {
		return
	}
	compiled, err := algorithm.NewPolicy(pol.Strategy, pol.HardLimitFactor, pol.Limits...)
	if err != nil {
		p.errf(path, "%v", err)
		return
	}
	pol.Compiled = compiled
}

func (p *parser) limit(v gjson.Result, path string) (algorithm.Limit, bool) {
	if !p.object(v, path, "rate", "window", "requests", "group_ms") {
		return algorithm.Limit{}, false
	}
	var group int64
	if g := v.Get("group_ms"); g.Exists() {
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
		if rate.Type != gjson.Number || rate.Num <= 0 {
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
	if name, ok := p.str(v.Get("header"), join(path, "header")); ok && name != "" {
		c.Header = strings.ToLower(name)
	} else if ok {
		p.errf(join(path, "header"), "must not be empty")
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
		if pol.Backend == BackendHybrid {
			half := uint32(min(pol.Compiled.ShortestWindowMs()/2-1, math.MaxUint32))
			cfg.Redis.SyncTimeoutMs = max(min(cfg.Redis.SyncTimeoutMs, half), cfg.Redis.TimeoutMs)
		}
	}
}
