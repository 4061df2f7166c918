//go:build unix

// Command mutate checks that floodgate's tests catch broken safety mechanisms (make mutate).
//
// It works on a copy of the module in a temporary directory, so the working tree is never
// changed, whatever happens to the run (an interrupt removes the copy too). Two stages:
//
//   - gremlins (github.com/go-gremlins/gremlins, with -gremlins) mutates every arithmetic,
//     comparison and increment in the packages that hold the safety logic, runs each package's
//     tests on each mutant and reports, per package, the mutants killed and those that lived;
//     its efficacy (killed / (killed + lived)) must reach -efficacy;
//   - the curated list (mutants.go) breaks one safety mechanism at a time (a replacement of one
//     exact text in one file), runs the tests that must catch it, and reports it killed or
//     survived. A Lua mutation also updates the script's SHA-1 in the Go source, as a
//     contributor would.
//
// The exit status is 1 when a curated mutant survived or a package's efficacy is below the
// target, 2 when the run could not be made (a list entry no longer applies, the tests fail
// unmutated).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"
)

func main() {
	var (
		gremlins = flag.String("gremlins", "", "path of the gremlins binary; empty: skip the gremlins stage")
		pkgs     = flag.String("pkgs", "./algorithm,./store", "packages gremlins mutates, comma-separated")
		target   = flag.Float64("efficacy", 90, "gremlins efficacy (percent) every package must reach")
		workers  = flag.Int("workers", 2, "gremlins workers")
		only     = flag.String("run", "", "regexp: apply only the curated mutants whose name matches")
		timeout  = flag.Duration("timeout", 3*time.Minute, "go test timeout per curated mutant")
		list     = flag.Bool("list", false, "list the curated mutants and exit")
		curated  = flag.Bool("curated", true, "run the curated list")
	)
	flag.Parse()
	if *list {
		for _, m := range mutants {
			fmt.Printf("%-58s %s (%s)\n", m.name, m.file, strings.Join(m.pkgs, " "))
		}
		return
	}
	var sel *regexp.Regexp
	if *only != "" {
		var err error
		if sel, err = regexp.Compile(*only); err != nil {
			fail(2, "-run: %v", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, options{gremlins: *gremlins, pkgs: splitList(*pkgs), efficacy: *target, workers: *workers,
		curated: *curated, only: sel, timeout: *timeout}))
}

type options struct {
	gremlins string
	pkgs     []string
	efficacy float64
	workers  int
	curated  bool
	only     *regexp.Regexp
	timeout  time.Duration
}

func run(ctx context.Context, o options) int {
	start := time.Now()
	root, err := moduleRoot()
	if err != nil {
		fail(2, "%v", err)
	}
	copyDir, err := os.MkdirTemp("", "floodgate-mutate-")
	if err != nil {
		fail(2, "%v", err)
	}
	defer os.RemoveAll(copyDir)
	if err := copyModule(root, copyDir); err != nil {
		fmt.Fprintf(os.Stderr, "mutate: copying the module: %v\n", err)
		return 2
	}
	fmt.Printf("mutate: working on a copy of %s in %s\n", root, copyDir)
	status := 0
	if o.gremlins != "" && len(o.pkgs) > 0 {
		s := runGremlins(ctx, copyDir, o)
		status = max(status, s)
	}
	if o.curated && ctx.Err() == nil {
		s := runCurated(ctx, copyDir, o)
		status = max(status, s)
	}
	if ctx.Err() != nil {
		fmt.Println("mutate: interrupted; the working tree was never changed")
		return 130
	}
	fmt.Printf("mutate: done in %s, exit status %d\n", time.Since(start).Round(time.Second), status)
	return status
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mutate: "+format+"\n", args...)
	os.Exit(code)
}
