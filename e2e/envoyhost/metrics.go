package envoyhost

import (
	"sort"
	"sync"
)

// Metric kinds of the ABI.
const (
	MetricCounter   = 0
	MetricGauge     = 1
	MetricHistogram = 2
)

// metricStore is one proxy's statistics: a metric is one value per name, whichever VM defined
// it, so the same name on every worker sums into one statistic, as in Envoy.
type metricStore struct {
	mu     sync.Mutex
	byName map[string]*metric
}

type metric struct {
	name    string
	kind    uint32
	value   int64
	samples []uint64
}

func newMetricStore() *metricStore { return &metricStore{byName: make(map[string]*metric)} }

func (s *metricStore) define(kind uint32, name string) *metric {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.byName[name]
	if !ok {
		m = &metric{name: name, kind: kind}
		s.byName[name] = m
	}
	return m
}

func (s *metricStore) increment(m *metric, delta int64) {
	s.mu.Lock()
	m.value += delta
	s.mu.Unlock()
}

func (s *metricStore) record(m *metric, v uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.kind == MetricHistogram {
		m.samples = append(m.samples, v)
		return
	}
	m.value = int64(v)
}

func (s *metricStore) get(m *metric) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint64(m.value)
}

// Metric returns the value of a counter or gauge by name (Envoy: wasmcustom.<name>).
func (h *Host) Metric(name string) (int64, bool) {
	h.metrics.mu.Lock()
	defer h.metrics.mu.Unlock()
	m, ok := h.metrics.byName[name]
	if !ok {
		return 0, false
	}
	return m.value, true
}

// MetricNames returns every defined metric name, sorted.
func (h *Host) MetricNames() []string {
	h.metrics.mu.Lock()
	defer h.metrics.mu.Unlock()
	names := make([]string, 0, len(h.metrics.byName))
	for n := range h.metrics.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// HistogramSamples returns the values recorded in a histogram.
func (h *Host) HistogramSamples(name string) []uint64 {
	h.metrics.mu.Lock()
	defer h.metrics.mu.Unlock()
	if m, ok := h.metrics.byName[name]; ok {
		return append([]uint64(nil), m.samples...)
	}
	return nil
}
