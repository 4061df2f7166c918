package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestExitStatusAndOutput(t *testing.T) {
	const fixtures = "../../internal/configcheck/testdata/"
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantStatus int
		wantOut    []string // lines of standard output, in order
		wantErr    string   // in standard error
	}{
		{name: "no file", wantStatus: 2, wantErr: "usage: floodgate-check"},
		{name: "unknown flag", args: []string{"-x", "envoy.yaml"}, wantStatus: 2, wantErr: "flag provided but not defined: -x"},
		{name: "unreadable file", args: []string{"no-such-file.yaml"}, wantStatus: 2, wantErr: "no-such-file.yaml"},
		{name: "fine", args: []string{"../../envoy.yaml"}, wantStatus: 0, wantOut: []string{
			`../../envoy.yaml: ok: Envoy bootstrap, 1 floodgate configuration (wasm filter "floodgate" at static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.config)`}},
		{name: "a warning is no error", args: []string{fixtures + "plugin-literal-token.json"}, wantStatus: 0, wantOut: []string{
			fixtures + "plugin-literal-token.json: redis.token: warning: ",
			fixtures + "plugin-literal-token.json: ok: plugin configuration, 1 floodgate configuration"}},
		{name: "an error in one file of two", args: []string{fixtures + "plugin-errors.json", "../../envoy.yaml"}, wantStatus: 1, wantOut: []string{
			fixtures + "plugin-errors.json: policies[0].limits[0].rate: error: must be > 0",
			fixtures + "plugin-errors.json: policies[1].key[0].name: error: must be a string",
			fixtures + "plugin-errors.json: policies[1].backend: error: ",
			fixtures + "plugin-errors.json: policies[1].name: error: ",
			"../../envoy.yaml: ok: "}},
		{name: "quiet", args: []string{"-q", "../../envoy.yaml", fixtures + "plugin-literal-token.json", fixtures + "k8s-bad-plugin-config.yaml"}, wantStatus: 1, wantOut: []string{
			fixtures + "k8s-bad-plugin-config.yaml: document 2 (WasmPlugin istio-system/floodgate): spec.pluginConfig.policies[0].key[0].trusted_hops: error: ",
			fixtures + "k8s-bad-plugin-config.yaml: document 2 (WasmPlugin istio-system/floodgate): spec.pluginConfig.policies[0].limits[0].requests: error: "}},
		{name: "standard input", args: []string{"-"}, stdin: `{"policies": []}`, wantStatus: 1, wantOut: []string{
			"-: policies: error: must hold 1 to 32 policies"}},
		{name: "a root_id of one's own", args: []string{"-name", "edge", fixtures + "envoy-no-floodgate.yaml"}, wantStatus: 0, wantOut: []string{
			fixtures + `envoy-no-floodgate.yaml: ok: Envoy bootstrap, 1 floodgate configuration (wasm filter "edge" at `}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			status := run(tc.args, strings.NewReader(tc.stdin), &stdout, &stderr)
			if status != tc.wantStatus {
				t.Errorf("status %d, want %d", status, tc.wantStatus)
			}
			lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
			if stdout.Len() == 0 {
				lines = nil
			}
			if len(lines) != len(tc.wantOut) {
				t.Fatalf("standard output:\n%s\nwant %d lines", stdout.String(), len(tc.wantOut))
			}
			for i, want := range tc.wantOut {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("line %d: %q, want it to start with %q", i+1, lines[i], want)
				}
			}
			if !strings.Contains(stderr.String(), tc.wantErr) || (tc.wantErr == "" && stderr.Len() > 0) {
				t.Errorf("standard error %q, want %q", stderr.String(), tc.wantErr)
			}
		})
	}
}

// TestReadmeTranscript: README's "Check a configuration in CI" shows what the command prints.
func TestReadmeTranscript(t *testing.T) {
	t.Chdir("../..") // README's command runs at the repository's root
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- transcript: floodgate-check -->\n```console\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no floodgate-check transcript")
	}
	var stdout bytes.Buffer
	status := -1
	var want strings.Builder
	for _, line := range strings.Split(strings.TrimSuffix(string(m[1]), "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "$ go run ./cmd/floodgate-check "):
			status = run(strings.Fields(strings.TrimPrefix(line, "$ go run ./cmd/floodgate-check ")), strings.NewReader(""), &stdout, io.Discard)
		case line == "$ echo $?":
			fmt.Fprintf(&stdout, "%d\n", status)
		default:
			want.WriteString(line + "\n")
		}
	}
	if stdout.String() != want.String() {
		t.Fatalf("README shows:\n%s\nthe command prints:\n%s", want.String(), stdout.String())
	}
}
