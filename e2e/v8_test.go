package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// envoyV8Flags are the V8 settings of Envoy's wasm runtime: proxy-wasm-cpp-host src/v8/v8.cc
// (engine()) turns Liftoff off (TurboFan only) and caps memory at 1 GiB (16384 pages of 64 KiB).
// e2e/v8host/host.mjs refuses to run without them.
var envoyV8Flags = []string{"--no-liftoff", "--wasm-max-mem-pages=16384"}

// runNode runs a script of e2e/v8host with Envoy's V8 flags and fails with its output when it
// exits non-zero.
func runNode(t *testing.T, script string, args ...string) {
	t.Helper()
	cmd := exec.Command("node", append(append(append([]string(nil), envoyV8Flags...), filepath.Join("v8host", script)), args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %s (make test installs node): %v\n%s", script, err, out)
	}
	t.Logf("node %s:\n%s", script, out)
}

// writeModule writes a module to a file of the test's temporary directory.
func writeModule(t *testing.T, name string, wasm []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestScenariosV8 runs the behaviour scenarios (the JSON export of internal/scenarios) against
// plugin.wasm in V8, the engine Envoy runs it in, through the Node.js host e2e/v8host.
func TestScenariosV8(t *testing.T) {
	runNode(t, "scenarios.mjs", "../internal/scenarios/testdata/scenarios.json", writeModule(t, "plugin.wasm", pluginWasm(t)))
}

// TestV8HostBehavesLikeEnvoy runs the V8 host's own tests on the test guests, the same
// behaviours envoyhost's tests check on wazero, and plugin.wasm shared by two proxies.
func TestV8HostBehavesLikeEnvoy(t *testing.T) {
	dir := t.TempDir()
	for _, g := range []string{"probe", "badimport", "badalloc"} {
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", filepath.Join(dir, g+".wasm"), "./testdata/guests/"+g)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build guest %s: %v\n%s", g, err, out)
		}
	}
	runNode(t, "selftest.mjs", dir, writeModule(t, "plugin.wasm", pluginWasm(t)))
}
