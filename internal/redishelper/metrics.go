package redishelper

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// metrics are the helper's Prometheus metrics, rendered in the text exposition format.
type metrics struct {
	mu          sync.Mutex
	requests    map[[2]string]uint64 // path, status code
	commands    map[[2]string]uint64 // command, outcome (ok, error)
	refusals    map[string]uint64    // reason
	redisErrors uint64
	buckets     []float64 // latency histogram upper bounds, seconds
	counts      []uint64
	sum         float64
	total       uint64
}

func newMetrics() *metrics {
	b := []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}
	return &metrics{requests: map[[2]string]uint64{}, commands: map[[2]string]uint64{}, refusals: map[string]uint64{}, buckets: b, counts: make([]uint64, len(b))}
}

func (m *metrics) request(path string, status int, took time.Duration) {
	switch path {
	case "/", "/pipeline", "/healthz", "/readyz", "/metrics":
	default:
		path = "other"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[[2]string{path, fmt.Sprint(status)}]++
	s := took.Seconds()
	for i, b := range m.buckets {
		if s <= b {
			m.counts[i]++
		}
	}
	m.sum += s
	m.total++
}

func (m *metrics) command(name string, failed bool) {
	outcome := "ok"
	if failed {
		outcome = "error"
	}
	m.mu.Lock()
	m.commands[[2]string{strings.ToUpper(name), outcome}]++
	m.mu.Unlock()
}

// refused counts a request or command the helper did not send to Redis, by reason: auth (no or
// wrong token), body (too large, not JSON), command (not PING, EVALSHA, EVAL), script (not one
// of floodgate's), key (not exactly one key under an allowed prefix), arguments (outside what
// the plugin sends), pipeline (too many commands or state records).
func (m *metrics) refused(reason string) {
	m.mu.Lock()
	m.refusals[reason]++
	m.mu.Unlock()
}

func (m *metrics) redisError() {
	m.mu.Lock()
	m.redisErrors++
	m.mu.Unlock()
}

func sortedKeys(m map[[2]string]uint64) [][2]string {
	keys := make([][2]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	return keys
}

func (m *metrics) serve(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintln(w, "# HELP floodgate_helper_requests_total HTTP requests by path and status.")
	fmt.Fprintln(w, "# TYPE floodgate_helper_requests_total counter")
	for _, k := range sortedKeys(m.requests) {
		fmt.Fprintf(w, "floodgate_helper_requests_total{path=%q,code=%q} %d\n", k[0], k[1], m.requests[k])
	}
	fmt.Fprintln(w, "# HELP floodgate_helper_commands_total Redis commands by name and outcome.")
	fmt.Fprintln(w, "# TYPE floodgate_helper_commands_total counter")
	for _, k := range sortedKeys(m.commands) {
		fmt.Fprintf(w, "floodgate_helper_commands_total{command=%q,outcome=%q} %d\n", k[0], k[1], m.commands[k])
	}
	fmt.Fprintln(w, "# HELP floodgate_helper_refused_total Requests and commands refused before Redis, by reason.")
	fmt.Fprintln(w, "# TYPE floodgate_helper_refused_total counter")
	reasons := make([]string, 0, len(m.refusals))
	for r := range m.refusals {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(w, "floodgate_helper_refused_total{reason=%q} %d\n", r, m.refusals[r])
	}
	fmt.Fprintln(w, "# HELP floodgate_helper_redis_errors_total Redis calls that failed other than with a Redis error reply (connection, timeout).")
	fmt.Fprintln(w, "# TYPE floodgate_helper_redis_errors_total counter")
	fmt.Fprintf(w, "floodgate_helper_redis_errors_total %d\n", m.redisErrors)
	fmt.Fprintln(w, "# HELP floodgate_helper_request_seconds Time to answer a request.")
	fmt.Fprintln(w, "# TYPE floodgate_helper_request_seconds histogram")
	for i, b := range m.buckets {
		fmt.Fprintf(w, "floodgate_helper_request_seconds_bucket{le=\"%g\"} %d\n", b, m.counts[i])
	}
	fmt.Fprintf(w, "floodgate_helper_request_seconds_bucket{le=\"+Inf\"} %d\n", m.total)
	fmt.Fprintf(w, "floodgate_helper_request_seconds_sum %g\n", m.sum)
	fmt.Fprintf(w, "floodgate_helper_request_seconds_count %d\n", m.total)
}
