// Command floodgate-check checks floodgate configurations before they reach a proxy, in CI or by
// hand, with the code the plugin itself runs on them (internal/configcheck): plugin
// configurations (JSON), Envoy bootstraps (YAML or JSON) and Kubernetes manifests (YAML, every
// Istio WasmPlugin in them). It prints every problem with its file, document and JSON path.
//
//	go run github.com/floodgate-proxy/floodgate/cmd/floodgate-check envoy.yaml deploy/istio/*.yaml
//	helm template ... | floodgate-check -
//
// Exit status: 0 when no file has an error (warnings allowed), 1 when one has, 2 on a usage error
// (no file, an unknown flag, a file that cannot be read).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/floodgate-proxy/floodgate/internal/configcheck"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// names collects the repeated -name flag.
type names []string

func (n *names) String() string     { return strings.Join(*n, ",") }
func (n *names) Set(v string) error { *n = append(*n, v); return nil }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("floodgate-check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts configcheck.Options
	fs.Var((*names)(&opts.Names), "name", "a root_id, plugin name or WasmPlugin name that is floodgate's besides \"floodgate\" (repeatable)")
	quiet := fs.Bool("q", false, "print problems only, not the files that are fine")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: floodgate-check [-name NAME]... [-q] FILE... (- reads standard input)")
		fmt.Fprintln(stderr, "A FILE is a plugin configuration (JSON), an Envoy bootstrap (YAML or JSON) or Kubernetes manifests (YAML).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	status := 0
	for _, file := range fs.Args() {
		var data []byte
		var err error
		if file == "-" {
			data, err = io.ReadAll(stdin)
		} else {
			data, err = os.ReadFile(file)
		}
		if err != nil {
			fmt.Fprintf(stderr, "floodgate-check: %v\n", err)
			return 2
		}
		r := configcheck.Check(file, data, opts)
		if r.Errors() > 0 {
			status = 1
		}
		if *quiet && r.Errors() == 0 {
			r.Findings = nil // warnings too: -q prints the files that fail
		}
		if *quiet && len(r.Findings) == 0 {
			continue
		}
		if err := r.Write(stdout); err != nil {
			fmt.Fprintf(stderr, "floodgate-check: %v\n", err)
			return 2
		}
	}
	return status
}
