package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("from-the-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file, env, want string
		fails                 bool
	}{
		{name: "a file, its newline removed", file: file, want: "from-the-file"},
		{name: "the environment", env: "from-the-env", want: "from-the-env"},
		{name: "neither", want: ""},
		{name: "both", file: file, env: "from-the-env", fails: true},
		{name: "a missing file", file: filepath.Join(dir, "missing"), fails: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TEST_SECRET", tc.env)
			got, err := secret(tc.file, "TEST_SECRET")
			if (err != nil) != tc.fails || got != tc.want {
				t.Fatalf("%q %v, want %q (fails %v)", got, err, tc.want, tc.fails)
			}
		})
	}
}

// TestRefusesToStartWithAWeakToken runs the command: a placeholder or missing token stops it
// before it listens.
func TestRefusesToStartWithAWeakToken(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "redis-helper")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("change-me\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"no token", nil, "", "give -token-file or FLOODGATE_HELPER_TOKEN"},
		{"the shipped placeholder in a file", []string{"-token-file", tokenFile}, "", "characters, want at least 32"},
		{"a placeholder in the environment", nil, "change-me-change-me-change-me-change-me", "a placeholder, not a secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"-listen", "127.0.0.1:0"}, tc.args...)...)
			cmd.Env = append(os.Environ(), "FLOODGATE_HELPER_TOKEN="+tc.env)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("%v: %s, want a failure with %q", err, out, tc.want)
			}
		})
	}
}
