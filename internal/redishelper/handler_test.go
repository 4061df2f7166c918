package redishelper

import (
	"bufio"
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
	"strings"
	"testing"
	"time"

	"github.com/floodgate-proxy/floodgate/internal/redistest"
	"github.com/redis/go-redis/v9"
)

var redisAddr string

// TestMain starts a real redis-server on a free loopback port (make test installs it).
func TestMain(m *testing.M) {
	srv, err := redistest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	redisAddr = srv.Addr
	code := m.Run()
	srv.Stop()
	os.Exit(code)
}

func newServer(t *testing.T, addr string, opts Options) *httptest.Server {
	t.Helper()
	return serve(t, redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{addr}, Protocol: 2, DialTimeout: 200 * time.Millisecond, MaxRetries: -1}), opts)
}

// serve runs a Handler over client (closed with the test); the token defaults to "secret".
func serve(t *testing.T, client redis.UniversalClient, opts Options) *httptest.Server {
	t.Helper()
	t.Cleanup(func() { client.Close() })
	if opts.Token == "" {
		opts.Token = "secret"
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

const script = `return {KEYS[1], tonumber(ARGV[1]) + 1}`

func TestProtocol(t *testing.T) {
	srv := newServer(t, redisAddr, Options{MaxBody: 256})
	sha := fmt.Sprintf("%q", scriptSHA(t, srv))
	tests := []struct {
		name, path, token, body string
		headers                 []string
		status                  int
		want                    string
	}{
		{name: "ping", path: "/", token: "secret", body: `["PING"]`, status: 200, want: `{"result":"PONG"}`},
		{name: "eval", path: "/", token: "secret", body: `["EVAL","` + script + `","1","k","41"]`, status: 200, want: `{"result":["k",42]}`},
		{name: "evalsha", path: "/", token: "secret", body: `["EVALSHA",` + sha + `,1,"k",1]`, status: 200, want: `{"result":["k",2]}`},
		{name: "noscript", path: "/", token: "secret", body: `["EVALSHA","0000000000000000000000000000000000000000","0"]`, status: 400, want: `{"error":"NOSCRIPT No matching script. Please use EVAL."}`},
		{name: "base64 strings as @upstash/redis asks", path: "/", token: "secret", body: `["PING"]`, headers: []string{"Upstash-Encoding", "base64"}, status: 200, want: `{"result":"UE9ORw=="}`},
		{name: "nil result", path: "/", token: "secret", body: `["EVAL","return nil","0"]`, status: 200, want: `{"result":null}`},
		{name: "pipeline", path: "/pipeline", token: "secret", body: `[["PING"],["EVAL","return redis.error_reply('boom')","0"],["EVAL","return 7","0"]]`, status: 200,
			want: `[{"result":"PONG"},{"error":"ERR boom"},{"result":7}]`},
		{name: "no token", path: "/", token: "", body: `["PING"]`, status: 401, want: `{"error":"Unauthorized"}`},
		{name: "wrong token", path: "/", token: "nope", body: `["PING"]`, status: 401, want: `{"error":"Unauthorized"}`},
		{name: "command not allowed", path: "/", token: "secret", body: `["FLUSHALL"]`, status: 400, want: `{"error":"ERR command FLUSHALL is not allowed by this helper"}`},
		{name: "script subcommand not allowed", path: "/", token: "secret", body: `["SCRIPT","FLUSH"]`, status: 400, want: `{"error":"ERR command SCRIPT is not allowed by this helper"}`},
		{name: "not allowed inside a pipeline", path: "/pipeline", token: "secret", body: `[["PING"],["SET","a","b"]]`, status: 400, want: `{"error":"ERR command SET is not allowed by this helper (command 1)"}`},
		{name: "bad json", path: "/", token: "secret", body: `{"cmd":"PING"}`, status: 400},
		{name: "body too large", path: "/", token: "secret", body: `["PING","` + strings.Repeat("x", 300) + `"]`, status: 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(t, srv, tc.path, tc.token, tc.body, tc.headers...)
			if status != tc.status || (tc.want != "" && body != tc.want) {
				t.Fatalf("got %d %s, want %d %s", status, body, tc.status, tc.want)
			}
		})
	}
}

func scriptSHA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	status, body := call(t, srv, "/", "secret", `["SCRIPT","LOAD","`+script+`"]`)
	var r struct{ Result string }
	if status != 200 || json.Unmarshal([]byte(body), &r) != nil || len(r.Result) != 40 {
		t.Fatalf("script load: %d %s", status, body)
	}
	return r.Result
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
	if status, _ := call(t, down, "/", "secret", `["PING"]`); status == 200 || time.Since(start) > 2*time.Second {
		t.Fatalf("command against a down redis: %d after %v", status, time.Since(start))
	}
	call(t, up, "/", "secret", `["PING"]`)
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
	for _, want := range []string{`floodgate_helper_commands_total{command="PING",outcome="ok"} 1`, `floodgate_helper_requests_total{path="/",code="200"} 1`, "floodgate_helper_request_seconds_count"} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
}

func TestTokenIsRequired(t *testing.T) {
	if _, err := New(redis.NewClient(&redis.Options{Addr: redisAddr}), Options{}); err == nil {
		t.Fatal("a handler without a token was built")
	}
}

// TestUpstashClientCompatibility drives the helper with the official @upstash/redis client
// (pinned in testdata/upstash, installed from the npm registry into a temporary directory).
func TestUpstashClientCompatibility(t *testing.T) {
	srv := newServer(t, redisAddr, Options{Token: "up-token"})
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
	run.Env = append(os.Environ(), "HELPER_URL="+srv.URL, "HELPER_TOKEN=up-token")
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("node check.mjs: %v\n%s", err, out)
	}
	want := strings.Join([]string{
		"ping PONG",
		"scriptLoad 40",
		`evalsha ["k","v"]`,
		"eval 42",
		`pipeline ["PONG","x"]`,
		"set refused true",
		"bad token refused",
	}, "\n")
	if got := strings.TrimSpace(string(out)); got != want {
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
	status, body := call(t, hs, "/", "secret", `["EVAL","redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])","1","{fg:p:abc}:s","v1"]`)
	if status != 200 || body != `{"result":"v1"}` {
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
	status, body := call(t, hs, "/", "secret", `["EVAL","return redis.call('INFO','replication'):match('role:(%a+)')","0"]`)
	if status != 200 || body != `{"result":"master"}` {
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
