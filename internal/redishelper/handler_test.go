package redishelper

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/floodgate-proxy/floodgate/algorithm"
	"github.com/floodgate-proxy/floodgate/internal/redistest"
	"github.com/floodgate-proxy/floodgate/internal/testlog"
	"github.com/floodgate-proxy/floodgate/redislimit"
	"github.com/redis/go-redis/v9"
)

// testToken passes CheckToken (as `openssl rand -hex 16` would make one).
const testToken = "9f4e2b7c1a0d83e6f5b9c2d4a7e10b38"

var (
	redisSrv   *redistest.Server
	redisAddr  string
	redisAdmin *redis.Client // the default user: the tests' administrator
)

// The helper connects as the floodgate user README gives (ACLRules), with this password.
const (
	aclUser     = "floodgate"
	aclPassword = "a2c4e6f8b1d3f5a7c9e0b2d4f6a8c1e3"
)

// TestMain starts a real redis-server on a free loopback port (make test installs it) with the
// floodgate ACL user.
func TestMain(m *testing.M) {
	srv, err := redistest.Start()
	if err == nil {
		err = srv.SetUser(aclUser, ACLRules(aclPassword, DefaultKeyPrefix, "team-b")...)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	redisSrv, redisAddr = srv, srv.Addr
	redisAdmin = redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 2})
	code := testlog.Main(m)
	redisAdmin.Close()
	srv.Stop()
	os.Exit(code)
}

// newServer serves a Handler connected to addr as the floodgate ACL user.
func newServer(t *testing.T, addr string, opts Options) *httptest.Server {
	t.Helper()
	return serve(t, redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{addr}, Username: aclUser, Password: aclPassword,
		Protocol: 2, DialTimeout: 200 * time.Millisecond, MaxRetries: -1}), opts)
}

// serve runs a Handler over client (closed with the test); the token defaults to testToken.
func serve(t *testing.T, client redis.UniversalClient, opts Options) *httptest.Server {
	t.Helper()
	t.Cleanup(func() { client.Close() })
	if opts.Token == "" {
		opts.Token = testToken
	}
	h, err := New(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, srv *httptest.Server, path, token, body string, headers ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, strings.TrimSpace(string(b))
}

// decideLua is the script of sliding-window policies (policy's).
var decideLua = redislimit.ScriptFor(func() *algorithm.Policy {
	l, _ := algorithm.NewLimit(10, 1, 0)
	p, _ := algorithm.NewPolicy(algorithm.Absolute, 1, l)
	return p
}())

// policy is a small policy: 10 a second.
func policy(t testing.TB) *algorithm.Policy {
	t.Helper()
	l, err := algorithm.NewLimit(10, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := algorithm.NewPolicy(algorithm.Absolute, 1, l)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// decide is the JSON command the plugin sends for one decision of p on key (verb EVALSHA or
// EVAL), as plugin/backend_redis.go builds it.
func decide(verb, key string, p *algorithm.Policy) string {
	script := redislimit.ScriptFor(p).SHA
	if verb == "EVAL" {
		script = redislimit.ScriptFor(p).Source
	}
	cmd := []string{verb, script, "1", key}
	cmd = append(cmd, redislimit.Args(p, redislimit.Call{Cost: 1, Draw: 0.5, NowMs: -1})...)
	b, _ := json.Marshal(cmd)
	return string(b)
}

func TestProtocol(t *testing.T) {
	srv := newServer(t, redisAddr, Options{MaxBody: 32 << 10}) // an EVAL carries decide.lua (17 KB)
	p := policy(t)
	key := "{floodgate:p:1a2b}"
	evalsha, eval := decide("EVALSHA", key, p), decide("EVAL", key, p)
	redisAdmin.ScriptFlush(context.Background())
	tests := []struct {
		name, path, token, body string
		headers                 []string
		status                  int
		want                    string
	}{
		{name: "ping", path: "/", token: testToken, body: `["PING"]`, status: 200, want: `{"result":"PONG"}`},
		{name: "evalsha before the script is loaded", path: "/", token: testToken, body: evalsha, status: 400, want: `{"error":"NOSCRIPT No matching script. Please use EVAL."}`},
		{name: "eval", path: "/", token: testToken, body: eval, status: 200, want: `{"result":[1,10,1000,9,0,1000,0,0,-1,0,0]}`},
		{name: "evalsha", path: "/", token: testToken, body: evalsha, status: 200, want: `{"result":[1,10,1000,8,0,1000,0,0,-1,0,0]}`},
		{name: "base64 strings as @upstash/redis asks", path: "/", token: testToken, body: `["PING"]`, headers: []string{"Upstash-Encoding", "base64"}, status: 200, want: `{"result":"UE9ORw=="}`},
		{name: "pipeline", path: "/pipeline", token: testToken, body: `[["PING"],` + evalsha + `]`, status: 200,
			want: `[{"result":"PONG"},{"result":[1,10,1000,7,0,1000,0,0,-1,0,0]}]`},
		{name: "no token", path: "/", token: "", body: `["PING"]`, status: 401, want: `{"error":"Unauthorized"}`},
		{name: "wrong token", path: "/", token: "nope", body: `["PING"]`, status: 401, want: `{"error":"Unauthorized"}`},
		{name: "command not allowed", path: "/", token: testToken, body: `["FLUSHALL"]`, status: 400, want: `{"error":"ERR command FLUSHALL is not allowed by this helper"}`},
		{name: "script load not allowed", path: "/", token: testToken, body: `["SCRIPT","LOAD","return 1"]`, status: 400, want: `{"error":"ERR command SCRIPT is not allowed by this helper"}`},
		{name: "not allowed inside a pipeline", path: "/pipeline", token: testToken, body: `[["PING"],["SET","a","b"]]`, status: 400, want: `{"error":"ERR command SET is not allowed by this helper (command 1)"}`},
		{name: "bad json", path: "/", token: testToken, body: `{"cmd":"PING"}`, status: 400},
		{name: "body too large", path: "/", token: testToken, body: `["PING","` + strings.Repeat("x", 33<<10) + `"]`, status: 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(t, srv, tc.path, tc.token, tc.body, tc.headers...)
			if status != tc.status || (tc.want != "" && withoutClock(body) != tc.want) {
				t.Fatalf("got %d %s, want %d %s", status, body, tc.status, tc.want)
			}
		})
	}
}

// TestOnlyFloodgateScriptsOnFloodgateKeys: script calls pass only for a known script, one key of
// an allowed prefix in the plugin's form, and arguments the plugin could send.
func TestOnlyFloodgateScriptsOnFloodgateKeys(t *testing.T) {
	srv := newServer(t, redisAddr, Options{KeyPrefixes: []string{"floodgate", "team-b"}})
	p := policy(t)
	args := redislimit.Args(p, redislimit.Call{Cost: 1, Draw: 0.5, NowMs: -1})
	with := func(verb, script, numkeys string, rest ...string) string {
		b, _ := json.Marshal(append([]string{verb, script, numkeys}, rest...))
		return string(b)
	}
	sha := decideLua.SHA
	pinned := redislimit.Args(p, redislimit.Call{Cost: 1, Draw: 0.5, NowMs: 1_700_000_000_000})
	huge := slices.Clone(args)
	huge[9], huge[10] = "2000000", "1" // a window of 2 000 s in 1 ms buckets
	for _, tc := range []struct {
		name, body, want string
	}{
		{"the default prefix", with("EVAL", decideLua.Source, "1", append([]string{"{floodgate:p:1}"}, args...)...), "result"},
		{"another allowed prefix", with("EVALSHA", sha, "1", append([]string{"{team-b:p:1}"}, args...)...), "result"},
		{"the SHA in upper case", with("EVALSHA", strings.ToUpper(sha), "1", append([]string{"{floodgate:p:2}"}, args...)...), "result"},
		{"an unknown script", with("EVAL", "return redis.call('DBSIZE')", "0"), "not one of floodgate's"},
		{"a known script changed by one byte", with("EVAL", decideLua.Source+" ", "1", append([]string{"{floodgate:p:1}"}, args...)...), "not one of floodgate's"},
		{"an unknown SHA", with("EVALSHA", strings.Repeat("0", 40), "1", append([]string{"{floodgate:p:1}"}, args...)...), "not one of floodgate's"},
		{"no key", with("EVALSHA", sha, "0", args...), "exactly one key"},
		{"nothing but the script", with("EVALSHA", sha, "1"), "exactly one key"},
		{"two keys", with("EVALSHA", sha, "2", append([]string{"{floodgate:p:1}", "{floodgate:p:2}"}, args...)...), "exactly one key"},
		{"another prefix", with("EVALSHA", sha, "1", append([]string{"{other:p:1}"}, args...)...), "is not {prefix:...}"},
		{"a prefix without its hash tag", with("EVALSHA", sha, "1", append([]string{"floodgate:p:1"}, args...)...), "is not {prefix:...}"},
		{"a key outside the hash tag", with("EVALSHA", sha, "1", append([]string{"{floodgate:p:1}:x"}, args...)...), "is not {prefix:...}"},
		{"a second hash tag", with("EVALSHA", sha, "1", append([]string{"{floodgate:{p}:1}"}, args...)...), "is not {prefix:...}"},
		{"an empty key name", with("EVALSHA", sha, "1", append([]string{"{floodgate:}"}, args...)...), "is not {prefix:...}"},
		{"a pinned clock", with("EVALSHA", sha, "1", append([]string{"{floodgate:p:1}"}, pinned...)...), "Redis's clock"},
		{"two million buckets", with("EVALSHA", sha, "1", append([]string{"{floodgate:p:1}"}, huge...)...), "buckets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, body := call(t, srv, "/", testToken, tc.body)
			if !strings.Contains(body, tc.want) {
				t.Fatalf("%s, want %q", body, tc.want)
			}
		})
	}
}

// TestObservedAttacksAreRefusedByTheHelper replays issue #12's observation 1 with a valid token:
// on the old helper each of these ran (FLUSHALL emptied the database, another application's key
// was read, KEYS listed everything, 300 heavy scripts held Redis for minutes). Now none reaches
// Redis, and the other application's key is untouched.
func TestObservedAttacksAreRefusedByTheHelper(t *testing.T) {
	ctx := context.Background()
	srv := newServer(t, redisAddr, Options{})
	redisAdmin.Set(ctx, "billing:invoice:42", "other application's data", 0)
	before := scriptCalls(t)
	heavy := `local x = 0 for i = 1, 1e9 do x = x + i end return x -- ` + strings.Repeat("#", 20<<10)
	pipeline := func(n int) string {
		cmds := make([]string, n)
		for i := range cmds {
			b, _ := json.Marshal([]string{"EVAL", heavy, "0"})
			cmds[i] = string(b)
		}
		return "[" + strings.Join(cmds, ",") + "]"
	}
	// Each is refused by the helper itself (its message), not by Redis's ACL behind it.
	for _, tc := range []struct {
		name, path, body string
		status           int
		want             string
	}{
		{"FLUSHALL through EVAL", "/", `["EVAL","return redis.call('FLUSHALL')","0"]`, 400, "not one of floodgate's"},
		{"another application's key through EVAL", "/", `["EVAL","return redis.call('GET', KEYS[1])","1","billing:invoice:42"]`, 400, "not one of floodgate's"},
		{"another application's key through a floodgate-looking call", "/", `["EVALSHA","` + decideLua.SHA + `","1","billing:invoice:42"]`, 400, "is not {prefix:...}"},
		{"KEYS *", "/", `["KEYS","*"]`, 400, "not allowed by this helper"},
		{"KEYS * through EVAL", "/", `["EVAL","return redis.call('KEYS','*')","0"]`, 400, "not one of floodgate's"},
		{"FLUSHALL", "/", `["FLUSHALL"]`, 400, "not allowed by this helper"},
		{"three heavy scripts in a pipeline", "/pipeline", pipeline(3), 400, "not one of floodgate's"},
		{"300 heavy scripts in a pipeline", "/pipeline", pipeline(300), 413, "body larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, body := call(t, srv, tc.path, testToken, tc.body); status != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %.200s, want %d %q", status, body, tc.status, tc.want)
			}
		})
	}
	if v, err := redisAdmin.Get(ctx, "billing:invoice:42").Result(); err != nil || v != "other application's data" {
		t.Fatalf("the other application's key: %q %v", v, err)
	}
	if after := scriptCalls(t); after != before {
		t.Fatalf("Redis ran %d scripts", after-before)
	}
}

// scriptCalls is the number of EVAL and EVALSHA calls Redis has run.
func scriptCalls(t *testing.T) int64 {
	t.Helper()
	info, err := redisAdmin.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		for _, cmd := range []string{"cmdstat_eval:", "cmdstat_evalsha:"} {
			if rest, ok := strings.CutPrefix(line, cmd); ok {
				var n int64
				fmt.Sscanf(rest, "calls=%d", &n)
				total += n
			}
		}
	}
	return total
}

// TestRedisACLRefusesTheAttacksOnItsOwn: were the helper's gate bypassed (a bug, or the Redis
// password stolen from the helper), the floodgate ACL user still cannot flush, list or read
// other keys, while floodgate's script runs in both of its modes.
func TestRedisACLRefusesTheAttacksOnItsOwn(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, Username: aclUser, Password: aclPassword, Protocol: 2})
	defer rdb.Close()
	redisAdmin.Set(ctx, "billing:invoice:43", "other application's data", 0)
	for _, tc := range []struct {
		name string
		cmd  []any
		want string
	}{
		{"FLUSHALL through EVAL", []any{"EVAL", "return redis.call('FLUSHALL')", "0"}, "can't run this command"},
		{"another application's key through EVAL", []any{"EVAL", "return redis.call('GET', 'billing:invoice:43')", "0"}, "can't access at least one of the keys"},
		{"another application's key as the script's key", []any{"EVAL", "return redis.call('GET', KEYS[1])", "1", "billing:invoice:43"}, "no permissions to access one of the keys"},
		{"KEYS * through EVAL", []any{"EVAL", "return redis.call('KEYS', '*')", "0"}, "can't run this command"},
		{"KEYS *", []any{"KEYS", "*"}, "NOPERM"},
		{"FLUSHALL", []any{"FLUSHALL"}, "NOPERM"},
		{"GET", []any{"GET", "billing:invoice:43"}, "NOPERM"},
		{"CONFIG SET", []any{"CONFIG", "SET", "maxmemory", "0"}, "NOPERM"},
		{"SCRIPT FLUSH", []any{"SCRIPT", "FLUSH"}, "NOPERM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := rdb.Do(ctx, tc.cmd...).Err(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want an error with %q", err, tc.want)
			}
		})
	}
	if n, err := redisAdmin.Exists(ctx, "billing:invoice:43").Result(); err != nil || n != 1 {
		t.Fatalf("the other application's key is gone: %d %v", n, err)
	}
	// Everything floodgate's scripts run is allowed: a decision and a lease.
	p := policy(t)
	for _, args := range [][]string{redislimit.Args(p, redislimit.Call{Cost: 1, Draw: 0.5, NowMs: -1}), redislimit.LeaseArgs(p, redislimit.Lease{Want: 3}, redislimit.Call{NowMs: -1})} {
		iargs := make([]any, len(args))
		for i, a := range args {
			iargs[i] = a
		}
		if _, err := rdb.Eval(ctx, decideLua.Source, []string{"{floodgate:acl:1}"}, iargs...).Int64Slice(); err != nil {
			t.Fatalf("floodgate's script as the ACL user: %v", err)
		}
	}
}

// TestPipelineBounds: a pipeline holds at most MaxPipeline commands and MaxRecords state records.
func TestPipelineBounds(t *testing.T) {
	srv := newServer(t, redisAddr, Options{MaxPipeline: 4})
	big := func(n int) *algorithm.Policy { // 16 limits of 1000 buckets: 16 000 records a call
		var ls []algorithm.Limit
		for i := range algorithm.MaxLimits {
			l, _ := algorithm.NewLimit(float64(100+i), int64(n), 100)
			ls = append(ls, l)
		}
		p, err := algorithm.NewPolicy(algorithm.Absolute, 1, ls...)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	pipeline := func(p *algorithm.Policy, n int) string { // EVALSHA: a NOSCRIPT answer is fine here
		cmds := make([]string, n)
		for i := range cmds {
			cmds[i] = decide("EVALSHA", fmt.Sprintf("{floodgate:big:%d}", i), p)
		}
		return "[" + strings.Join(cmds, ",") + "]"
	}
	for _, tc := range []struct {
		name   string
		srv    *httptest.Server
		body   string
		status int
		want   string
	}{
		{"four commands", srv, pipeline(policy(t), 4), 200, ""},
		{"five commands", srv, pipeline(policy(t), 5), 400, "1 to 4 commands"},
		{"six calls of 16 000 records", newServer(t, redisAddr, Options{MaxBody: 1 << 20}), pipeline(big(100), 6), 200, ""},
		{"seven calls of 16 000 records", newServer(t, redisAddr, Options{MaxBody: 1 << 20}), pipeline(big(100), 7), 400, "more than 100000 state records (command 6)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(t, tc.srv, "/pipeline", testToken, tc.body)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %.200s, want %d %q", status, body, tc.status, tc.want)
			}
		})
	}
}

func TestWeakTokensAreRefused(t *testing.T) {
	for _, tc := range []struct {
		token string
		ok    bool
	}{
		{"", false},
		{"change-me", false},
		{"s3cr3t-but-short", false},
		{strings.Repeat("a", 64), false},
		{strings.Repeat("ab", 32), false},
		{"change-me-change-me-change-me-0123456789", false},
		{"ExampleTokenForTheDocs-4f7a9c2e1b3d5a68", false},
		{"9f4e2b7c1a0d83e6f5b9c2d4a7e10b38\n", false},
		{"9f4e2b7c 1a0d83e6f5b9c2d4a7e10b38", false},
		{testToken, true},
		{"J8q2xZt5Lw0Rk3Vn7Bc1Hs6Dy9Fp4Ma2", true},
	} {
		err := CheckToken(tc.token)
		if (err == nil) != tc.ok {
			t.Errorf("CheckToken(%q) = %v, want ok %v", tc.token, err, tc.ok)
		}
		if _, err := New(redisAdmin, Options{Token: tc.token}); (err == nil) != tc.ok {
			t.Errorf("New with %q: %v", tc.token, err)
		}
	}
}

func TestHealthReadinessAndMetrics(t *testing.T) {
	up := newServer(t, redisAddr, Options{})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	down := newServer(t, l.Addr().String(), Options{Timeout: 300 * time.Millisecond})
	l.Close()
	for _, tc := range []struct {
		srv    *httptest.Server
		path   string
		status int
	}{
		{up, "/healthz", 200}, {up, "/readyz", 200}, {down, "/healthz", 200}, {down, "/readyz", 503},
	} {
		res, err := http.Get(tc.srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.path, res.StatusCode, tc.status)
		}
	}
	// Redis unreachable: the command fails fast with an error, and it is counted.
	start := time.Now()
	if status, _ := call(t, down, "/", testToken, `["PING"]`); status == 200 || time.Since(start) > 2*time.Second {
		t.Fatalf("command against a down redis: %d after %v", status, time.Since(start))
	}
	call(t, up, "/", testToken, `["PING"]`)
	call(t, up, "/", testToken, `["FLUSHALL"]`)
	call(t, up, "/", "wrong", `["PING"]`)
	res, err := http.Get(up.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var lines []string
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	text := strings.Join(lines, "\n")
	for _, want := range []string{`floodgate_helper_commands_total{command="PING",outcome="ok"} 1`, `floodgate_helper_requests_total{path="/",code="200"} 1`, "floodgate_helper_request_seconds_count",
		`floodgate_helper_refused_total{reason="auth"} 1`, `floodgate_helper_refused_total{reason="command"} 1`} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
}

// TestUpstashClientCompatibility drives the helper with the official @upstash/redis client
// (pinned in testdata/upstash, installed from the npm registry into a temporary directory).
func TestUpstashClientCompatibility(t *testing.T) {
	srv := newServer(t, redisAddr, Options{})
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "check.mjs"} {
		data, err := os.ReadFile("testdata/upstash/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir+"/"+f, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	install := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm ci (make test installs node and npm): %v\n%s", err, out)
	}
	run := exec.Command("node", "check.mjs")
	run.Dir = dir
	// One bucket an hour long: the answers do not depend on how long node takes between its
	// calls (with the 100 ms buckets of policy, calls 100 ms apart answered another reset time).
	l, err := algorithm.PerPeriod(10, 3600, 3_600_000)
	if err != nil {
		t.Fatal(err)
	}
	p, err := algorithm.NewPolicy(algorithm.Absolute, 1, l)
	if err != nil {
		t.Fatal(err)
	}
	args, _ := json.Marshal(redislimit.Args(p, redislimit.Call{Cost: 1, Draw: 0.5, NowMs: -1}))
	run.Env = append(os.Environ(), "HELPER_URL="+srv.URL, "HELPER_TOKEN="+testToken, "DECIDE_LUA="+decideLua.Source,
		"DECIDE_SHA="+decideLua.SHA, "DECIDE_ARGS="+string(args))
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("node check.mjs: %v\n%s", err, out)
	}
	want := strings.Join([]string{
		"ping PONG",
		"eval [1,10,3600000,9,0,3600000,0,0,-1,0,0]",
		"evalsha [1,10,3600000,8,0,3600000,0,0,-1,0,0]",
		`pipeline ["PONG",[1,10,3600000,7,0,3600000,0,0,-1,0,0]]`,
		"scriptLoad refused true",
		"other script refused true",
		"set refused true",
		"bad token refused",
	}, "\n")
	if got := withoutClock(strings.TrimSpace(string(out))); got != want {
		t.Fatalf("@upstash/redis saw:\n%s\nwant:\n%s", got, want)
	}
}

// TestRedisCluster runs the decision script through the helper on a Redis Cluster (one node
// owning every slot): the cluster client routes the hash-tagged key.
func TestRedisCluster(t *testing.T) {
	srv, err := redistest.StartCluster(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{srv.Addr}, IsClusterMode: true, Protocol: 2})
	hs := serve(t, client, Options{})
	status, body := call(t, hs, "/", testToken, decide("EVAL", "{floodgate:p:abc}", policy(t)))
	if status != 200 || withoutClock(body) != `{"result":[1,10,1000,9,0,1000,0,0,-1,0,0]}` {
		t.Fatalf("cluster eval: %d %s", status, body)
	}
	if _, ok := client.(*redis.ClusterClient); !ok {
		t.Fatalf("client is %T, want a cluster client", client)
	}
}

// TestRedisSentinel reaches the master through a Sentinel, as -redis-mode sentinel does.
func TestRedisSentinel(t *testing.T) {
	master, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Stop()
	sentinel, err := redistest.StartSentinel(t.TempDir(), "floodgate", master)
	if err != nil {
		t.Fatal(err)
	}
	defer sentinel.Stop()
	hs := serve(t, redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{sentinel.Addr}, MasterName: "floodgate", Protocol: 2}), Options{})
	// A decision writes its key: only the master accepts it.
	status, body := call(t, hs, "/", testToken, decide("EVAL", "{floodgate:p:abc}", policy(t)))
	if status != 200 || withoutClock(body) != `{"result":[1,10,1000,9,0,1000,0,0,-1,0,0]}` {
		t.Fatalf("through sentinel: %d %s", status, body)
	}
}

// TestRedisTLS reaches a Redis that accepts only TLS, verifying its certificate, as
// -redis-tls -redis-ca do.
func TestRedisTLS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	certFile, keyFile := dir+"/cert.pem", dir+"/key.pem"
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := redistest.StartTLS(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	for _, tc := range []struct {
		name   string
		tls    *tls.Config
		status int
	}{
		{"verified TLS", &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, 200},
		{"plain text to a TLS-only Redis", nil, 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := serve(t, redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{srv.Addr}, TLSConfig: tc.tls, Protocol: 2,
				DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, MaxRetries: -1}), Options{Timeout: 500 * time.Millisecond})
			res, err := http.Get(hs.URL + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Fatalf("readyz %d, want %d", res.StatusCode, tc.status)
			}
		})
	}
}

// selfSigned returns a certificate and key for 127.0.0.1, valid for an hour.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// redisClock is the last value of a decision's answer: Redis's clock, different in every run.
var redisClock = regexp.MustCompile(`,1[0-9]{12}\]`)

// withoutClock drops Redis's clock from the decisions' answers in s.
func withoutClock(s string) string { return redisClock.ReplaceAllString(s, "]") }
