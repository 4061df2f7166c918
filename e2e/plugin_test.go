// Package e2e runs the real plugin.wasm in the Envoy-faithful host (envoyhost) and checks what
// users rely on: exact limits across concurrent workers, keys, answers, metrics, bounded memory,
// reloads, and survival under Envoy's WASI profile.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/floodgate-proxy/floodgate/e2e/envoyhost"
	"github.com/floodgate-proxy/floodgate/internal/testlog"
)

var (
	wasmMu    sync.Mutex
	wasmBuilt = map[string][]byte{}
	buildDir  string // where modules built by the tests go; removed by TestMain
)

func TestMain(m *testing.M) {
	code := testlog.Main(m)
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// pluginWasm returns plugin.wasm: $FLOODGATE_WASM (make test builds it) or a fresh build.
func pluginWasm(t testing.TB) []byte { return module(t, "FLOODGATE_WASM", "../cmd/floodgate") }

// noopWasm returns the yardstick plugin: $FLOODGATE_NOOP_WASM or a fresh build.
func noopWasm(t testing.TB) []byte { return module(t, "FLOODGATE_NOOP_WASM", "../cmd/noop-plugin") }

// module reads the module named by envVar, or builds pkg once per test binary.
func module(t testing.TB, envVar, pkg string) []byte {
	t.Helper()
	wasmMu.Lock()
	defer wasmMu.Unlock()
	if b, ok := wasmBuilt[pkg]; ok {
		return b
	}
	path := os.Getenv(envVar)
	if path == "" {
		if buildDir == "" {
			dir, err := os.MkdirTemp("", "floodgate-e2e")
			if err != nil {
				t.Fatal(err)
			}
			buildDir = dir
		}
		path = filepath.Join(buildDir, filepath.Base(pkg)+".wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", path, pkg)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	wasmBuilt[pkg] = b
	return b
}

func startHost(t testing.TB, config string, vms int, mutate ...func(*envoyhost.Config)) *envoyhost.Host {
	t.Helper()
	cfg := envoyhost.Config{Wasm: pluginWasm(t), VMs: vms, VMID: "floodgate", RootID: "floodgate", PluginConfig: []byte(config)}
	for _, m := range mutate {
		m(&cfg)
	}
	h, err := envoyhost.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if f := h.Failures(); len(f) > 0 {
			t.Errorf("VM failures: %v", f)
		}
		h.Close(context.Background())
	})
	return h
}

// answer is what a client sees of one request.
type answer struct {
	status  int // 200 when the request reached the upstream
	headers [][2]string
	body    string
}

func (a answer) header(name string) string {
	for _, kv := range a.headers {
		if kv[0] == name {
			return kv[1]
		}
	}
	return ""
}

// send runs one request through h; the upstream answers 200 to what continues.
func send(t testing.TB, h *envoyhost.Host, source string, headers ...[2]string) answer {
	t.Helper()
	return sendHeaders(t, h, source, append([][2]string{{":method", "GET"}, {":path", "/api/items"}, {":authority", "api.example.com"}}, headers...))
}

// sendHeaders runs one request with exactly these headers through h.
func sendHeaders(t testing.TB, h *envoyhost.Host, source string, all [][2]string) answer {
	t.Helper()
	return sendUpstream(t, h, source, all, 200)
}

// sendUpstream runs one request through h; the upstream answers it with status upstream.
func sendUpstream(t testing.TB, h *envoyhost.Host, source string, all [][2]string, upstream int) answer {
	t.Helper()
	s := h.NewStream(map[string]string{"source.address": source})
	defer s.Done()
	ctx := context.Background()
	o, err := s.RequestHeaders(ctx, all, true)
	if err != nil {
		t.Fatalf("request headers: %v", err)
	}
	switch o {
	case envoyhost.OutcomeLocal:
		lr := s.Local()
		return answer{status: lr.Status, headers: lr.Headers, body: string(lr.Body)}
	case envoyhost.OutcomeContinue:
		resp, err := s.ResponseHeaders(ctx, [][2]string{{":status", strconv.Itoa(upstream)}}, true)
		if err != nil {
			t.Fatalf("response headers: %v", err)
		}
		return answer{status: upstream, headers: resp}
	}
	t.Fatalf("outcome %v", o)
	return answer{}
}

func policy(name, fields string) string {
	return `{"name":"` + name + `"` + fields + `}`
}

func configOf(policies ...string) string {
	return `{"shared_data":{"slots":1024},"policies":[` + strings.Join(policies, ",") + `]}`
}

func metric(t testing.TB, h *envoyhost.Host, name string) int64 {
	t.Helper()
	v, _ := h.Metric(name)
	return v
}

// hammer sends n requests from workers goroutines spread over every VM and counts admissions.
func hammer(t *testing.T, h *envoyhost.Host, workers, n int, source func(i int) string) (admitted int64) {
	t.Helper()
	var next, ok atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if a := send(t, h, source(int(i))); a.status == 200 {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return ok.Load()
}

func TestAbsoluteIsExactAcrossConcurrentWorkers(t *testing.T) {
	// 100 per 60 s window: the whole run fits in one window, so exactly 100 pass.
	h := startHost(t, configOf(policy("per-client", `,"key":[{"type":"client_ip"}],"limits":[{"requests":"100/m"}]`)), 4)
	got := hammer(t, h, 8, 600, func(int) string { return "10.0.0.1:1000" })
	if got != 100 {
		t.Fatalf("admitted %d of 600 across 4 workers, want exactly 100", got)
	}
	if a, r := metric(t, h, "floodgate.per-client.allowed"), metric(t, h, "floodgate.per-client.rejected"); a != 100 || r != 500 {
		t.Fatalf("metrics allowed=%d rejected=%d, want 100 and 500", a, r)
	}
}

func TestSuppressedStaysWithinHardLimit(t *testing.T) {
	// Q = 100, H = 150 over 60 s; 1000 attempts arrive at once.
	h := startHost(t, configOf(policy("shed", `,"key":[{"type":"constant","value":"all"}],"limits":[{"requests":"100/m"}],"strategy":"suppressed","hard_limit_factor":1.5`)), 4)
	got := hammer(t, h, 8, 1000, func(int) string { return "10.0.0.2:1000" })
	if got < 100 || got > 150 {
		t.Fatalf("admitted %d, want between Q=100 and H=150", got)
	}
	if s := metric(t, h, "floodgate.shed.suppressed"); s == 0 {
		t.Fatal("no request was shed by the draw")
	}
}

func TestKeysAreIsolated(t *testing.T) {
	h := startHost(t, configOf(policy("per-client", `,"key":[{"type":"client_ip"}],"limits":[{"requests":"5/m"}]`)), 2)
	got := hammer(t, h, 4, 200, func(i int) string { return "10.0.1." + strconv.Itoa(i%10) + ":999" })
	if got != 50 {
		t.Fatalf("admitted %d for 10 clients of 5 each, want 50", got)
	}
}

func TestAnswersAndHeaderStyles(t *testing.T) {
	tests := []struct {
		style   string
		allowed map[string]string
		reject  map[string]string
	}{
		{style: "ietf",
			allowed: map[string]string{"ratelimit-policy": `"p";q=2;w=60`, "ratelimit": `"p";r=1;t=60`, "x-ratelimit-limit": ""},
			reject:  map[string]string{"ratelimit": `"p";r=0;t=60`, "retry-after": "60", "content-type": "text/plain"}},
		{style: "legacy",
			allowed: map[string]string{"x-ratelimit-limit": "2", "x-ratelimit-remaining": "1", "x-ratelimit-reset": "60", "ratelimit": ""},
			reject:  map[string]string{"x-ratelimit-remaining": "0", "retry-after": "60"}},
		{style: "both",
			allowed: map[string]string{"ratelimit-policy": `"p";q=2;w=60`, "x-ratelimit-limit": "2"},
			reject:  map[string]string{"ratelimit": `"p";r=0;t=60`, "x-ratelimit-remaining": "0"}},
		{style: "none",
			allowed: map[string]string{"ratelimit": "", "x-ratelimit-limit": ""},
			reject:  map[string]string{"ratelimit": "", "retry-after": "60"}},
	}
	for _, tc := range tests {
		t.Run(tc.style, func(t *testing.T) {
			h := startHost(t, configOf(policy("p", `,"key":[{"type":"client_ip"}],"limits":[{"requests":"2/m"}],"response":{"headers":"`+tc.style+`","body":"slow down"}`)), 1)
			first := send(t, h, "10.2.0.1:1")
			for k, v := range tc.allowed {
				if got := first.header(k); got != v {
					t.Errorf("allowed: %s = %q, want %q", k, got, v)
				}
			}
			send(t, h, "10.2.0.1:1")
			third := send(t, h, "10.2.0.1:1")
			if third.status != 429 || third.body != "slow down" {
				t.Fatalf("third request: %d %q", third.status, third.body)
			}
			for k, v := range tc.reject {
				if got := third.header(k); got != v {
					t.Errorf("rejected: %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestBadConfigurationIsRefused(t *testing.T) {
	_, err := envoyhost.New(context.Background(), envoyhost.Config{Wasm: pluginWasm(t),
		PluginConfig: []byte(`{"policies":[{"name":"p","key":[{"type":"client_ip"}],"limits":[{"rate":-1}],"colour":"red"}]}`)})
	if !errors.Is(err, envoyhost.ErrConfigRejected) {
		t.Fatalf("err = %v, want the configuration refused", err)
	}
	for _, want := range []string{"policies[0].colour: unknown field", "policies[0].limits[0].rate: must be > 0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q: %v", want, err)
		}
	}
}

func TestSharedDataStaysBounded(t *testing.T) {
	h := startHost(t, `{"shared_data":{"slots":64},"policies":[`+policy("per-ip", `,"key":[{"type":"client_ip"}],"limits":[{"rate":10}]`)+`]}`, 2)
	hammer(t, h, 4, 5000, func(i int) string { return fmt.Sprintf("10.%d.%d.%d:1", i>>16, (i>>8)&255, i&255) })
	if n := h.SharedData().Len(); n > 64 {
		t.Fatalf("%d shared-data entries after 5000 distinct keys, bound 64", n)
	}
	if metric(t, h, "floodgate.per-ip.evictions") == 0 {
		t.Fatal("5000 live keys in 64 x 4 ways must evict")
	}
}

func TestReloadKeepsWorking(t *testing.T) {
	shared := envoyhost.NewSharedData()
	withShared := func(c *envoyhost.Config) { c.Shared = shared }
	cfg := configOf(policy("p", `,"key":[{"type":"client_ip"}],"limits":[{"requests":"3/m"}]`))
	old := startHost(t, cfg, 2, withShared)
	for i := 0; i < 3; i++ {
		send(t, old, "10.6.0.1:1")
	}
	// Same policy and limits: the new configuration continues the counters (Envoy keeps shared
	// data as long as any VM of the vm_id lives).
	same := startHost(t, cfg, 2, withShared)
	if a := send(t, same, "10.6.0.1:1"); a.status != 429 {
		t.Fatalf("after a reload with the same limits: %d, want 429", a.status)
	}
	// Changed limits: the state's fingerprint no longer matches and the key starts afresh.
	changed := startHost(t, configOf(policy("p", `,"key":[{"type":"client_ip"}],"limits":[{"requests":"5/m"}]`)), 2, withShared)
	for i := 0; i < 5; i++ {
		if a := send(t, changed, "10.6.0.1:1"); a.status != 200 {
			t.Fatalf("after a reload with new limits, request %d: %d", i, a.status)
		}
	}
	if a := send(t, changed, "10.6.0.1:1"); a.status != 429 {
		t.Fatalf("sixth request: %d", a.status)
	}
}

func TestSurvivesEnvoyWASIProfileWithFrequentGC(t *testing.T) {
	// gjson links package os, whose init opens stdio; the Go runtime then reaches poll_oneoff
	// (ENOSYS in Envoy 1.33) only if it ever has to wait. The plugin never waits: prove it.
	h := startHost(t, configOf(
		policy("a", `,"key":[{"type":"client_ip"}],"limits":[{"rate":50},{"requests":"1000/m"}]`),
		policy("b", `,"key":[{"type":"header","name":"x-api-key"},{"type":"path"}],"missing_key":{"action":"fallback","value":"none"},"limits":[{"rate":5,"window":10}],"strategy":"suppressed","hard_limit_factor":2`),
	), 2, func(c *envoyhost.Config) { c.Env = map[string]string{"GOGC": "1"} })
	n := 20000
	if testing.Short() {
		n = 2000
	}
	hammer(t, h, 4, n, func(i int) string { return fmt.Sprintf("10.7.%d.%d:1", (i>>8)&255, i&255) })
	if calls := h.ImportCalls()["wasi_snapshot_preview1.poll_oneoff"]; calls != 0 {
		t.Fatalf("poll_oneoff called %d times", calls)
	}
	if f := h.Failures(); len(f) > 0 {
		t.Fatal(f)
	}
	t.Logf("%d requests with GOGC=1: no poll_oneoff, no VM failure; wasm memory per VM %d KiB", n, h.MemoryBytes(0)/1024)
}
