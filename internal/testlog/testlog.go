// Package testlog keeps the logs of code under test out of a passing test run: the standard
// logger's output (and slog's default logger, which writes through it, and net/http's servers and
// proxies, which log through it) is held in memory and printed only when a test failed, and a
// logger can be routed to one test's log (shown on failure, or with -v).
package testlog

import (
	"bytes"
	"io"
	"log"
	"log/slog"
	"os"
	"sync"
	"testing"
)

// keep is how much of the standard logger's latest output Main holds.
const keep = 1 << 20

// Main runs the tests of m with the standard logger writing to memory, and prints what it wrote
// (its last MiB) to stderr only when a test failed. Use it as TestMain's os.Exit(testlog.Main(m)).
func Main(m *testing.M) int {
	var buf tail
	prev := log.Writer()
	log.SetOutput(&buf)
	code := m.Run()
	log.SetOutput(prev)
	if code != 0 {
		_, _ = os.Stderr.Write(buf.bytes())
	}
	return code
}

// tail keeps the last keep bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tail) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > keep {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-keep:]...)
	}
	return len(p), nil
}

func (b *tail) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf)
}

// Writer returns a writer to t's log, one t.Log call per write. Writes after t's cleanups began
// are dropped (a server's goroutine may still log while it is closed).
func Writer(t testing.TB) io.Writer {
	t.Helper()
	w := &writer{t: t}
	t.Cleanup(w.close)
	return w
}

type writer struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

func (w *writer) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// Logger returns a slog logger writing text to t's log.
func Logger(t testing.TB) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(Writer(t), nil))
}

// StdLogger returns a standard logger writing to t's log (http.Server.ErrorLog,
// httputil.ReverseProxy.ErrorLog).
func StdLogger(t testing.TB) *log.Logger {
	t.Helper()
	return log.New(Writer(t), "", 0)
}
