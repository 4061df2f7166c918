package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The README's transcripts (```console blocks after a "<!-- transcript: NAME -->" line) run here
// as written, against what `make run`, `make run-redis` and `make run-hybrid` start, with every
// port moved to a free one on loopback.

var binDir string // the binaries of localBinaries, in buildDir

// localBinaries builds what the stack runs (make local-bins) once per test binary, into the
// directory TestMain removes.
func localBinaries(t *testing.T) string {
	t.Helper()
	wasmMu.Lock()
	defer wasmMu.Unlock()
	if binDir != "" {
		return binDir
	}
	if buildDir == "" {
		dir, err := os.MkdirTemp("", "floodgate-e2e")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = dir
	}
	dir := filepath.Join(buildDir, "local")
	for name, pkg := range map[string]string{"gateway": "./cmd/gateway", "stack": "./cmd/stack", "redis-helper": "../cmd/redis-helper"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	binDir = dir
	return binDir
}

// freePorts returns n ports on 127.0.0.1 that were free a moment ago.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var ports []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		_, p, _ := net.SplitHostPort(l.Addr().String())
		ports = append(ports, p)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// portMap moves the ports the shipped files and the README use to free ones.
type portMap map[string]string

func newPortMap(t *testing.T) portMap {
	t.Helper()
	m := portMap{}
	for i, p := range freePorts(t, 7) {
		m[[]string{"10000", "10001", "9901", "9902", "8080", "8379", "6380"}[i]] = p
	}
	return m
}

// bootstrap rewrites the shipped bootstrap file with the free ports, into dir. Its minute window
// becomes an hour: the transcripts must hold however long a busy machine takes between their
// first and last request (within the window the decisions are the same).
func (m portMap) bootstrap(t *testing.T, file, dir string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, p := range []string{"10000", "9901", "8080", "8379"} {
		if !strings.Contains(s, "port_value: "+p+" }") {
			t.Fatalf("%s no longer has port %s", file, p)
		}
		s = strings.ReplaceAll(s, "port_value: "+p+" }", "port_value: "+m[p]+" }")
	}
	s = strings.ReplaceAll(s, `"10/m"`, `"10/h"`)
	out := filepath.Join(dir, filepath.Base(file))
	if err := os.WriteFile(out, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// command rewrites a README command line with the free ports, on host.
func (m portMap) command(line, host string) string {
	return regexp.MustCompile(`localhost:(\d+)`).ReplaceAllStringFunc(line, func(s string) string {
		if p, ok := m[strings.TrimPrefix(s, "localhost:")]; ok {
			return host + ":" + p
		}
		return s
	})
}

// syncBuffer is a process's output, read while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// process is a command the test started and must see stop cleanly.
type process struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// startProcess runs path with args and waits until its output contains ready.
func startProcess(t *testing.T, ready, path string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(path, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", filepath.Base(path), p.out)
		}
	})
	// A guard against a hang, not a speed requirement: each gateway compiles plugin.wasm first.
	deadline := time.After(5 * time.Minute)
	for !strings.Contains(p.out.String(), ready) {
		select {
		case <-p.done:
			t.Fatalf("%s exited before it was ready: %v", filepath.Base(path), p.err)
		case <-deadline:
			t.Fatalf("%s not ready after 5 minutes", filepath.Base(path))
		case <-time.After(50 * time.Millisecond):
		}
	}
	return p
}

// interrupt sends SIGINT, as Ctrl-C does, and requires a clean exit.
func (p *process) interrupt(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		t.Fatal("still running 2 minutes after SIGINT")
	}
	if p.err != nil {
		t.Fatalf("exit after SIGINT: %v", p.err)
	}
}

// step is one command of a README transcript and the output it shows.
type step struct{ command, want string }

// transcript reads the README's transcript name.
func transcript(t *testing.T, name string) []step {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- transcript: " + regexp.QuoteMeta(name) + " -->\n```console\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatalf("README.md has no transcript %q", name)
	}
	var steps []step
	for _, line := range strings.Split(strings.TrimSuffix(string(m[1]), "\n"), "\n") {
		if cmd, ok := strings.CutPrefix(line, "$ "); ok {
			steps = append(steps, step{command: cmd})
		} else if len(steps) > 0 {
			steps[len(steps)-1].want += line + "\n"
		}
	}
	return steps
}

// sh runs a README command line and returns its output, each line's trailing blanks removed.
func sh(t *testing.T, line string) string {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed: make test installs it")
	}
	out, err := exec.Command("sh", "-c", line).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	return trimLines(string(out))
}

func trimLines(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t\r") // curl -i gives HTTP lines with CRLF
	}
	return strings.Join(lines, "\n") + "\n"
}

// startStack runs the stack on the shipped bootstrap file, every port moved to a free one.
func startStack(t *testing.T, file string) (*process, portMap) {
	t.Helper()
	bin, dir, ports := localBinaries(t), t.TempDir(), newPortMap(t)
	wasm := filepath.Join(dir, "plugin.wasm")
	if err := os.WriteFile(wasm, pluginWasm(t), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, "Ctrl-C stops everything.", filepath.Join(bin, "stack"), "-config", ports.bootstrap(t, file, dir),
		"-wasm", wasm, "-bin", bin, "-listen", "127.0.0.1:"+ports["10000"]+",127.0.0.1:"+ports["10001"],
		"-admin", "127.0.0.1:"+ports["9901"]+",127.0.0.1:"+ports["9902"], "-redis", "127.0.0.1:"+ports["6380"])
	return p, ports
}

// stopsCleanly interrupts the stack and requires every process it started gone and every port
// it served closed.
func stopsCleanly(t *testing.T, p *process, ports portMap) {
	t.Helper()
	var pids []int
	for _, m := range regexp.MustCompile(`(?m)^  \S+ +\S+ +pid (\d+)`).FindAllStringSubmatch(p.out.String(), -1) {
		pid, _ := strconv.Atoi(m[1])
		pids = append(pids, pid)
	}
	if len(pids) != 4 {
		t.Fatalf("the stack listed %d processes, want redis-server, redis-helper and two gateways", len(pids))
	}
	p.interrupt(t)
	if !strings.Contains(p.out.String(), "stack: everything stopped") {
		t.Fatal("the stack did not say it stopped everything")
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d is still there after the stack stopped (kill: %v)", pid, err)
		}
	}
	for _, port := range ports {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			t.Errorf("port %s still accepts connections after the stack stopped", port)
		}
	}
}

// TestRunRedisAsReadmeShows: make run-redis's stack starts, both gateways answer exactly as the
// README's transcript says (one limit across them, decided in Redis), and Ctrl-C stops it all.
func TestRunRedisAsReadmeShows(t *testing.T) {
	// A decision slower than redis.timeout_ms (100 ms) is taken on the gateway's own count, as the
	// README says; on an overloaded machine that changes gateway 2's answers. Such a run is told
	// apart by its fallbacks counter and run again on a fresh stack, three runs at most; a
	// mismatch in a run without fallbacks fails at once. The transcript is never loosened.
	const runs = 3
	for run := 1; ; run++ {
		mismatches, fallbacks := runRedisTranscript(t)
		if len(mismatches) == 0 {
			return
		}
		if fallbacks == 0 {
			t.Fatal(strings.Join(mismatches, "\n"))
		}
		if run == runs {
			t.Fatalf("each of %d runs had decisions slower than redis.timeout_ms (%d fallbacks in the last); the last run:\n%s",
				runs, fallbacks, strings.Join(mismatches, "\n"))
		}
		t.Logf("run %d: %d decisions fell back to the local count (helper slower than redis.timeout_ms); running again", run, fallbacks)
	}
}

// runRedisTranscript starts make run-redis's stack, runs the README's transcript against it and
// stops it; it returns how the output differed from the README and how many decisions the two
// gateways took in failure mode local.
func runRedisTranscript(t *testing.T) (mismatches []string, fallbacks int) {
	t.Helper()
	p, ports := startStack(t, "../deploy/local/envoy-redis.yaml")
	// The start-up log says which backend and failure mode each policy uses.
	if !strings.Contains(p.out.String(), "per-client (absolute, 1 limits, backend redis, failure mode local)") {
		t.Error("the gateways' start-up log does not give the policy's backend and failure mode")
	}
	for _, s := range transcript(t, "run-redis") {
		// The stack prints the lines to try: the README's loops and statistics.
		tried := strings.Contains(s.command, "$(seq") || strings.Contains(s.command, "/stats")
		if printed := ports.command(s.command, "localhost"); tried && !strings.Contains(p.out.String(), "  "+printed+"\n") {
			t.Errorf("the stack does not print %q", printed)
		}
		if got := sh(t, ports.command(s.command, "127.0.0.1")); got != s.want {
			mismatches = append(mismatches, fmt.Sprintf("$ %s\ngot:\n%swant (README.md):\n%s", s.command, got, s.want))
		}
	}
	for _, admin := range []string{"9901", "9902"} {
		out := sh(t, "curl -s 127.0.0.1:"+ports[admin]+"/stats")
		if m := regexp.MustCompile(`(?m)^wasmcustom\.floodgate\.per-client\.fallbacks: (\d+)$`).FindStringSubmatch(out); m != nil {
			n, _ := strconv.Atoi(m[1])
			fallbacks += n
		}
	}
	stopsCleanly(t, p, ports)
	return mismatches, fallbacks
}

// statuses reads a transcript's status-code loop output: "200 200 429".
func statuses(t *testing.T, out string) []string {
	t.Helper()
	codes := strings.Fields(out)
	for _, c := range codes {
		if c != "200" && c != "429" {
			t.Fatalf("status %s in %q", c, out)
		}
	}
	return codes
}

// TestRunHybridSharesOneLimit: make run-hybrid's stack starts and its two gateways never admit
// more than the one limit together. A gateway's unspent reservation is unavailable to the other
// until its next sync, so the README's transcript is checked against that bound rather than
// word for word (typed by hand, it shows exactly what the README does); then every request that
// could still pass is admitted, 10 in all, and Ctrl-C stops it all.
func TestRunHybridSharesOneLimit(t *testing.T) {
	p, ports := startStack(t, "../deploy/local/envoy-hybrid.yaml")
	if !strings.Contains(p.out.String(), "per-client (absolute, 1 limits, backend hybrid, failure mode local)") {
		t.Error("the gateways' start-up log does not give the policy's backend and failure mode")
	}
	admitted := 0
	for i, s := range transcript(t, "run-hybrid") {
		got := sh(t, ports.command(s.command, "127.0.0.1"))
		if !strings.Contains(s.command, "http_code") {
			continue // the stats: their counts follow the reservations
		}
		codes := statuses(t, got)
		if i == 0 && codes[0] != "200" {
			t.Fatalf("the first request of a fresh key: %s", codes[0])
		}
		admitted += strings.Count(got, "200")
	}
	if admitted > 10 {
		t.Fatalf("the two gateways admitted %d, more than the limit of 10", admitted)
	}
	// Reservations lapse or come back at the next syncs; what they held becomes admissible.
	urls := []string{"http://127.0.0.1:" + ports["10001"] + "/", "http://127.0.0.1:" + ports["10000"] + "/"}
	deadline := time.Now().Add(2 * time.Minute) // a guard against a hang
	for i := 0; admitted < 10; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of 10 admitted after 2 minutes", admitted)
		}
		if curlStatus(t, urls[i%2]) == "200" {
			admitted++
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, u := range urls {
		if s := curlStatus(t, u); s != "429" {
			t.Fatalf("%s after the limit was spent: %s", u, s)
		}
	}
	stopsCleanly(t, p, ports)
}

func curlStatus(t *testing.T, url string) string {
	t.Helper()
	return strings.TrimSpace(sh(t, "curl -s -o /dev/null -w '%{http_code}' "+url))
}

// TestRunLocalAsReadmeShows: make run's gateway answers as the README's quick start says. Its
// limit is 10 per second, so the transcript holds word for word when it runs within a second,
// and is only checked for the first 10 requests otherwise.
func TestRunLocalAsReadmeShows(t *testing.T) {
	bin, dir, ports := localBinaries(t), t.TempDir(), newPortMap(t)
	wasm := filepath.Join(dir, "plugin.wasm")
	if err := os.WriteFile(wasm, pluginWasm(t), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, "floodgate gateway:", filepath.Join(bin, "gateway"), "-config", ports.bootstrap(t, "../envoy.yaml", dir),
		"-wasm", wasm, "-admin", "127.0.0.1:"+ports["9901"])
	waitFor(t, time.Minute, "the gateway's listener", func() bool { // it logs, then listens
		c, err := net.Dial("tcp", "127.0.0.1:"+ports["10000"])
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	steps := transcript(t, "run")
	got := make([]string, len(steps))
	start := time.Now()
	for i, s := range steps {
		got[i] = sh(t, ports.command(s.command, "127.0.0.1"))
	}
	if took := time.Since(start); took > 900*time.Millisecond {
		if codes := statuses(t, got[0]); strings.Count(strings.Join(codes[:10], " "), "200") != 10 {
			t.Fatalf("the first 10 requests: %s", got[0])
		}
		t.Logf("the transcript took %v, beyond the 1 s window: checked the first 10 requests only", took)
	} else {
		for i, s := range steps {
			if got[i] != s.want {
				t.Errorf("$ %s\ngot:\n%swant (README.md):\n%s", s.command, got[i], s.want)
			}
		}
	}
	p.interrupt(t)
}
