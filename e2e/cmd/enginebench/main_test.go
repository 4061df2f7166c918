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
