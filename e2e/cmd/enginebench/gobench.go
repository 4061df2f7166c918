package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// goBench is one `go test -bench` run of a package: the command as the report prints it, and
// each benchmark's figures by unit, one per -count run, in the order the benchmarks ran.
type goBench struct {
	Command string
	Names   []string
	Figures map[string]map[string][]float64 // name, unit: one figure per run
}

// median is the median of one benchmark's figure over the runs (0 when it reported none).
func (g goBench) median(name, unit string) float64 { return median(g.Figures[name][unit]) }

// runGoBench runs `go test -run '^$' -bench pattern -benchmem -count count [-benchtime
// benchtime] pkg` with env added to this process's environment, and parses its output.
func runGoBench(pkg, pattern string, count int, benchtime string, env ...string) (goBench, error) {
	args := []string{"test", "-run", "^$", "-bench", pattern, "-benchmem", "-count", strconv.Itoa(count)}
	if benchtime != "" {
		args = append(args, "-benchtime", benchtime)
	}
	args = append(args, pkg)
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	shown := []string{"go"}
	for _, a := range args {
		shown = append(shown, shellQuote(a))
	}
	g := goBench{Command: strings.Join(shown, " "), Figures: map[string]map[string][]float64{}}
	if err != nil {
		return g, fmt.Errorf("%s: %w\n%s", g.Command, err, out)
	}
	g.parse(out)
	if len(g.Names) == 0 {
		return g, fmt.Errorf("%s: no benchmark ran\n%s", g.Command, out)
	}
	return g, nil
}

// shellQuote quotes an argument for a shell when it holds more than letters, digits and ./=_-.
func shellQuote(a string) string {
	if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789./=_-") == "" {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}

// procs is the -GOMAXPROCS suffix go test gives benchmark names.
var procs = regexp.MustCompile(`-\d+$`)

// parse reads the benchmark lines of go test's output: "BenchmarkX/sub-2  N  v unit  v unit...".
func (g *goBench) parse(out []byte) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := procs.ReplaceAllString(strings.TrimPrefix(f[0], "Benchmark"), "")
		if g.Figures[name] == nil {
			g.Figures[name] = map[string][]float64{}
			g.Names = append(g.Names, name)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err == nil {
				g.Figures[name][f[i+1]] = append(g.Figures[name][f[i+1]], v)
			}
		}
	}
}

// column is one figure of a benchmark table: its unit in go test's output, its heading and how
// it is written.
type column struct {
	unit, heading string
	format        func(float64) string
}

func intCol(unit, heading string) column { return column{unit, heading, num} }

func decCol(unit, heading string) column {
	return column{unit, heading, func(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }}
}

// table writes one row per benchmark (named by rename, when it returns a name) and one column per
// figure: the median over the runs.
func (g goBench) table(first string, cols []column, rename func(string) string) string {
	var b strings.Builder
	b.WriteString("| " + first)
	align := "| ---"
	for _, c := range cols {
		b.WriteString(" | " + c.heading)
		align += " | ---:"
	}
	b.WriteString(" |\n" + align + " |\n")
	for _, n := range g.Names {
		row := n
		if rename != nil {
			row = rename(n)
		}
		b.WriteString("| " + row)
		for _, c := range cols {
			if _, ok := g.Figures[n][c.unit]; !ok {
				b.WriteString(" | ")
				continue
			}
			b.WriteString(" | " + c.format(g.median(n, c.unit)))
		}
		b.WriteString(" |\n")
	}
	return b.String()
}
