package main

import (
	"cmp"
	"os"
	"path/filepath"
	"testing"
)

func TestPackageOf(t *testing.T) {
	pkgs := map[string]string{
		"runtime": "runtime", "internal_runtime_maps": "internal/runtime/maps",
		"github.com_floodgate_proxy_floodgate_plugin": "github.com/floodgate-proxy/floodgate/plugin",
	}
	tests := []struct{ fn, want string }{
		{"runtime.mallocgc", "runtime"},
		{"internal_runtime_maps.__Map_.Delete", "internal/runtime/maps"},
		{"github.com_floodgate_proxy_floodgate_plugin.__limiter_.run", "github.com/floodgate-proxy/floodgate/plugin"},
		{"byn$mgfn-shared$runtime.memmove", "runtime"},
		{"type_.eq.x", "type_"},
	}
	for _, tc := range tests {
		if got := packageOf(tc.fn, pkgs); got != tc.want {
			t.Errorf("packageOf(%q) = %q, want %q", tc.fn, got, tc.want)
		}
	}
}

func TestRewriteReplacesOnlyTheSection(t *testing.T) {
	tests := []struct{ name, before, want string }{
		{"appended", "# Benchmarks\n\nother\n", "# Benchmarks\n\nother\n\n" + beginMarker + "\nnew\n" + endMarker + "\n"},
		{"replaced", "a\n" + beginMarker + "\nold\n" + endMarker + "\nb\n", "a\n" + beginMarker + "\nnew\n" + endMarker + "\nb\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "B.md")
			if err := os.WriteFile(file, []byte(tc.before), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := rewrite(file, "new\n"); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(file)
			if string(got) != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReadModule(t *testing.T) {
	path := cmp.Or(os.Getenv("FLOODGATE_NOOP_WASM"), "../../../build/noop.wasm") // make test sets it
	m, err := readModule(path)
	if os.IsNotExist(err) {
		t.Skip("no-op plugin not built (make noop)")
	}
	if err != nil {
		t.Fatal(err)
	}
	if m.code == 0 || m.data == 0 || m.initialPages == 0 || m.funcs["runtime.mallocgc"] == 0 {
		t.Fatalf("code %d, data %d, pages %d, mallocgc %d bytes", m.code, m.data, m.initialPages, m.funcs["runtime.mallocgc"])
	}
}

func TestGoBenchParse(t *testing.T) {
	out := []byte(`goos: linux
BenchmarkDecide/absolute/one-limit-2   	 9846151	       108.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkDecide/absolute/one-limit-2   	 9846151	       120.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkDecide/absolute/one-limit-2   	 9846151	       100.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkScriptCost/gcra/1s-2          	     300	     52000 ns/op	       120.0 B/key-1	         9.600 redis-µs/call
--- BENCH: BenchmarkX
PASS
ok  	x	1.0s
`)
	var g goBench
	g.Figures = map[string]map[string][]float64{}
	g.parse(out)
	tests := []struct {
		name, unit string
		want       float64
	}{
		{"Decide/absolute/one-limit", "ns/op", 108},
		{"Decide/absolute/one-limit", "allocs/op", 0},
		{"ScriptCost/gcra/1s", "B/key-1", 120},
		{"ScriptCost/gcra/1s", "redis-µs/call", 9.6},
	}
	for _, tc := range tests {
		if got := g.median(tc.name, tc.unit); got != tc.want {
			t.Errorf("%s %s = %v, want %v", tc.name, tc.unit, got, tc.want)
		}
	}
	if len(g.Names) != 2 {
		t.Errorf("names %v, want 2", g.Names)
	}
}

func TestShellQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"./algorithm/", "./algorithm/"},
		{"^$", "'^$'"},
		{"plugin.wasm at cfda2e5", "'plugin.wasm at cfda2e5'"},
		{"it's", `'it'\''s'`},
	}
	for _, tc := range tests {
		if got := shellQuote(tc.in); got != tc.want {
			t.Errorf("shellQuote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
