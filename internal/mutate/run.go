//go:build unix

package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// moduleRoot returns the directory of the main module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}

// copyModule copies the files git knows of in root (tracked, and untracked but not ignored: the
// working tree as it is, uncommitted changes included) into dst.
func copyModule(root, dst string) error {
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("git ls-files: %w", err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if rel == "" {
			continue
		}
		if err := copyFile(filepath.Join(root, rel), filepath.Join(dst, rel)); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // deleted in the working tree
			}
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil || st.IsDir() {
		return err // a submodule or the like: nothing to copy
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// command runs name args in dir and returns its combined output, copied to stream too unless
// nil; an interrupt or the timeout kills its whole process group (go test's test binaries
// included).
func command(ctx context.Context, dir string, timeout time.Duration, stream io.Writer, env []string, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if stream != nil {
		w := io.MultiWriter(&out, stream)
		cmd.Stdout, cmd.Stderr = w, w
	}
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	return out.Bytes(), err
}

// goTest runs the tests matching run (all when empty) of pkgs in dir, without caching or vet.
func goTest(ctx context.Context, dir string, timeout time.Duration, run string, pkgs []string) ([]byte, error) {
	args := []string{"test", "-count=1", "-vet=off", "-failfast", "-timeout", timeout.String()}
	if run != "" {
		args = append(args, "-run", run)
	}
	// The command's own timeout leaves go test the time to report the test that hung.
	return command(ctx, dir, timeout+time.Minute, nil, nil, "go", append(args, pkgs...)...)
}

var (
	failedTest  = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`)
	buildFailed = regexp.MustCompile(`(?m)\[(build|setup) failed\]|^# `)
)

// apply replaces m.old by m.new in m's file under dir and returns a function restoring it. A
// Lua script's SHA-1, named in the Go files of its directory, is replaced too.
func apply(dir string, m mutant) (restore func() error, err error) {
	path := filepath.Join(dir, m.file)
	orig, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if n := bytes.Count(orig, []byte(m.old)); n != 1 {
		return nil, fmt.Errorf("%s: the text to replace occurs %d times, want once: update the entry", m.file, n)
	}
	mutated := bytes.Replace(orig, []byte(m.old), []byte(m.new), 1)
	restores := []func() error{func() error { return os.WriteFile(path, orig, 0o644) }}
	restore = func() error {
		var errs []error
		for _, r := range restores {
			errs = append(errs, r())
		}
		return errors.Join(errs...)
	}
	if err := os.WriteFile(path, mutated, 0o644); err != nil {
		return restore, err
	}
	if filepath.Ext(m.file) == ".lua" {
		oldSHA, newSHA := sha1Hex(orig), sha1Hex(mutated)
		gos, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*.go"))
		found := false
		for _, g := range gos {
			src, err := os.ReadFile(g)
			if err != nil || !bytes.Contains(src, []byte(oldSHA)) {
				continue
			}
			found = true
			restores = append(restores, func() error { return os.WriteFile(g, src, 0o644) })
			if err := os.WriteFile(g, bytes.ReplaceAll(src, []byte(oldSHA), []byte(newSHA)), 0o644); err != nil {
				return restore, err
			}
		}
		if !found {
			return restore, fmt.Errorf("%s: no Go file next to it names its SHA-1 %s", m.file, oldSHA)
		}
	}
	return restore, nil
}

func sha1Hex(b []byte) string {
	sum := sha1.Sum(b)
	return hex.EncodeToString(sum[:])
}

// runCurated checks the tests pass unmutated, then applies each selected curated mutant in turn.
func runCurated(ctx context.Context, dir string, o options) int {
	var sel []mutant
	for _, m := range mutants {
		if o.only == nil || o.only.MatchString(m.name) {
			sel = append(sel, m)
		}
	}
	fmt.Printf("\n== curated safety mutations: %d, one at a time\n", len(sel))
	// Baseline: every package's selected tests pass on the unmutated copy, in one go test per
	// package.
	runs := map[string][]string{}
	var order []string
	for _, m := range sel {
		for _, p := range m.pkgs {
			if _, ok := runs[p]; !ok {
				order = append(order, p)
			}
			runs[p] = append(runs[p], m.run)
		}
	}
	for _, p := range order {
		t0 := time.Now()
		out, err := goTest(ctx, dir, o.timeout, strings.Join(runs[p], "|"), []string{p})
		if ctx.Err() != nil {
			return 130
		}
		if err != nil {
			fmt.Printf("baseline %s: the tests fail without any mutation (%v):\n%s\n", p, err, tail(out, 40))
			return 2
		}
		fmt.Printf("baseline %-14s pass (%s)\n", p, time.Since(t0).Round(100*time.Millisecond))
	}
	killed, survived, broken := 0, 0, 0
	for _, m := range sel {
		if ctx.Err() != nil {
			return 130
		}
		t0 := time.Now()
		restore, err := apply(dir, m)
		var out []byte
		if err == nil {
			out, err = goTest(ctx, dir, o.timeout, m.run, m.pkgs)
			if ctx.Err() != nil {
				_ = restore()
				return 130
			}
			if err == nil {
				survived++
				fmt.Printf("SURVIVED  %-58s %6s  (%s -run '%s')\n", m.name, time.Since(t0).Round(100*time.Millisecond), strings.Join(m.pkgs, " "), m.run)
			} else if buildFailed.Match(out) {
				broken++
				fmt.Printf("ERROR     %-58s the mutant does not build: fix the entry\n%s\n", m.name, tail(out, 20))
			} else {
				killed++
				by := "go test: " + firstLine(err.Error())
				if f := failedTest.FindSubmatch(out); f != nil {
					by = string(f[1])
				}
				fmt.Printf("KILLED    %-58s %6s  by %s\n", m.name, time.Since(t0).Round(100*time.Millisecond), by)
			}
		} else {
			broken++
			fmt.Printf("ERROR     %-58s %v\n", m.name, err)
		}
		if restore != nil {
			if rerr := restore(); rerr != nil {
				fmt.Printf("mutate: restoring the copy after %s: %v\n", m.name, rerr)
				return 2
			}
		}
	}
	fmt.Printf("curated: %d/%d killed, %d survived, %d not applicable\n", killed, len(sel), survived, broken)
	switch {
	case broken > 0:
		return 2
	case survived > 0:
		return 1
	}
	return 0
}

func tail(out []byte, lines int) string {
	l := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
