//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Every curated mutant still applies to the tree: its text occurs exactly once in its file, and
// its test packages exist.
func TestCuratedMutantsApply(t *testing.T) {
	root := filepath.Join("..", "..")
	seen := map[string]bool{}
	for _, m := range mutants {
		t.Run(m.name, func(t *testing.T) {
			if seen[m.name] {
				t.Fatal("duplicate name")
			}
			seen[m.name] = true
			src, err := os.ReadFile(filepath.Join(root, m.file))
			if err != nil {
				t.Fatal(err)
			}
			if n := bytes.Count(src, []byte(m.old)); n != 1 {
				t.Fatalf("%s: old text occurs %d times, want 1", m.file, n)
			}
			if m.old == m.new || m.run == "" || len(m.pkgs) == 0 {
				t.Fatal("an entry needs a change, tests to run and their packages")
			}
			for _, p := range m.pkgs {
				if _, err := os.Stat(filepath.Join(root, p)); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// apply replaces the text, updates a Lua script's SHA-1 next to it, and restores both.
func TestApplyAndRestore(t *testing.T) {
	dir := t.TempDir()
	lua := []byte("return 1 > 0\n")
	goSrc := []byte(`const sha = "` + sha1Hex(lua) + `"` + "\n")
	if err := os.MkdirAll(filepath.Join(dir, "r"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"r/s.lua": lua, "r/s.go": goSrc} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	restore, err := apply(dir, mutant{file: "r/s.lua", old: "> 0", new: ">= 0"})
	if err != nil {
		t.Fatal(err)
	}
	mutated, _ := os.ReadFile(filepath.Join(dir, "r/s.lua"))
	g, _ := os.ReadFile(filepath.Join(dir, "r/s.go"))
	if string(mutated) != "return 1 >= 0\n" || !bytes.Contains(g, []byte(sha1Hex(mutated))) {
		t.Fatalf("mutated %q, Go source %q", mutated, g)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{"r/s.lua": lua, "r/s.go": goSrc} {
		if got, _ := os.ReadFile(filepath.Join(dir, name)); !bytes.Equal(got, want) {
			t.Fatalf("%s not restored: %q", name, got)
		}
	}
	if _, err := apply(dir, mutant{file: "r/s.lua", old: "absent", new: "x"}); err == nil {
		t.Fatal("a text that does not occur was applied")
	}
}

// gremlins' report (its -o output) is counted by status; efficacy leaves out what no test covers
// and what timed out.
func TestCountReport(t *testing.T) {
	const report = `{"go_module":"m","files":[{"file_name":"a.go","mutations":[
		{"type":"ARITHMETIC_BASE","status":"KILLED","line":3,"column":9},
		{"type":"CONDITIONALS_BOUNDARY","status":"LIVED","line":7,"column":12},
		{"type":"CONDITIONALS_NEGATION","status":"KILLED","line":7,"column":12},
		{"type":"INCREMENT_DECREMENT","status":"KILLED","line":8,"column":2},
		{"type":"INVERT_NEGATIVES","status":"TIMED OUT","line":9,"column":2},
		{"type":"ARITHMETIC_BASE","status":"NOT COVERED","line":10,"column":2}]}]}`
	var r gremlinsReport
	if err := json.Unmarshal([]byte(report), &r); err != nil {
		t.Fatal(err)
	}
	got := countReport(r)
	if got.killed != 3 || got.lived != 1 || got.timedOut != 1 || got.notCovered != 1 || got.efficacy() != 75 {
		t.Fatalf("%+v, efficacy %v", got, got.efficacy())
	}
	if len(got.survivors) != 1 || got.survivors[0] != "a.go:7:12 CONDITIONALS_BOUNDARY" {
		t.Fatalf("survivors %q", got.survivors)
	}
	if e := countReport(gremlinsReport{}).efficacy(); e != 100 {
		t.Fatalf("efficacy of no mutant %v, want 100", e)
	}
}
