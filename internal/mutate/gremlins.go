//go:build unix

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// gremlinsReport is the part of gremlins' -o output mutate reads.
type gremlinsReport struct {
	Files []struct {
		FileName  string `json:"file_name"`
		Mutations []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
			Line   int    `json:"line"`
			Column int    `json:"column"`
		} `json:"mutations"`
	} `json:"files"`
}

// tally counts a package's mutants by status; lived lists the survivors as file:line:column type.
type tally struct {
	killed, lived, timedOut, notCovered, notViable int
	survivors                                      []string
}

func (t tally) efficacy() float64 {
	if t.killed+t.lived == 0 {
		return 100
	}
	return 100 * float64(t.killed) / float64(t.killed+t.lived)
}

func countReport(r gremlinsReport) tally {
	var t tally
	for _, f := range r.Files {
		for _, m := range f.Mutations {
			switch m.Status {
			case "KILLED":
				t.killed++
			case "LIVED":
				t.lived++
				t.survivors = append(t.survivors, f.FileName+":"+strconv.Itoa(m.Line)+":"+strconv.Itoa(m.Column)+" "+m.Type)
			case "TIMED OUT":
				t.timedOut++
			case "NOT COVERED":
				t.notCovered++
			case "NOT VIABLE":
				t.notViable++
			}
		}
	}
	sort.Strings(t.survivors)
	return t
}

// runGremlins runs gremlins on each package in dir (the module's copy) and reports its tally.
// go vet is off for the mutants' test runs (a mutant that vet rejects would still be caught by
// the tests; vet only costs time). Test results are never cached: gremlins times each mutant's
// tests against the first, coverage, run (a cached one would make every mutant time out), with
// a generous coefficient so that a busy machine does not turn slow runs into timeouts.
func runGremlins(ctx context.Context, dir string, o options) int {
	fmt.Printf("\n== gremlins on %s (efficacy target %.0f%%)\n", strings.Join(o.pkgs, " "), o.efficacy)
	status := 0
	for _, pkg := range o.pkgs {
		if ctx.Err() != nil {
			return 130
		}
		t0 := time.Now()
		report := filepath.Join(dir, ".gremlins-"+strings.NewReplacer("/", "_", ".", "_").Replace(pkg)+".json")
		// Its progress shows the mutants that lived or timed out as they come.
		out, err := command(ctx, dir, 3*time.Hour, os.Stdout, []string{"GOFLAGS=-vet=off -count=1"}, o.gremlins, "unleash",
			"--workers", strconv.Itoa(o.workers), "--timeout-coefficient", "15", "--output-statuses", "lt",
			"--output", report, pkg)
		if ctx.Err() != nil {
			return 130
		}
		if err != nil {
			fmt.Printf("gremlins %s failed: %v\n%s\n", pkg, err, tail(out, 20))
			status = 2
			continue
		}
		raw, err := os.ReadFile(report)
		var r gremlinsReport
		if err == nil {
			err = json.Unmarshal(raw, &r)
		}
		if err != nil {
			fmt.Printf("gremlins %s: reading its report: %v\n", pkg, err)
			status = 2
			continue
		}
		t := countReport(r)
		verdict := "ok"
		if t.efficacy() < o.efficacy {
			verdict, status = "BELOW TARGET", max(status, 1)
		}
		fmt.Printf("%-12s killed %d, lived %d, timed out %d, not covered %d, not viable %d: efficacy %.1f%% %s (%s)\n",
			pkg, t.killed, t.lived, t.timedOut, t.notCovered, t.notViable, t.efficacy(), verdict, time.Since(t0).Round(time.Second))
		for _, s := range t.survivors {
			fmt.Printf("    lived: %s/%s\n", strings.TrimPrefix(pkg, "./"), s)
		}
	}
	return status
}
