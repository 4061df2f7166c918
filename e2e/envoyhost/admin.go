package envoyhost

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// AdminHandler serves the proxy's statistics like Envoy's admin endpoint: /stats lists
// "wasmcustom.<name>: <value>"; /stats/prometheus and /stats?format=prometheus give the
// Prometheus text format (WritePrometheus).
func (h *Host) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	prometheus := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		_ = h.WritePrometheus(w)
	}
	mux.HandleFunc("/stats/prometheus", func(w http.ResponseWriter, r *http.Request) { prometheus(w) })
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("format") == "prometheus" {
			prometheus(w)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		for _, name := range h.MetricNames() {
			v, _ := h.Metric(name)
			fmt.Fprintf(w, "wasmcustom.%s: %d\n", name, v)
		}
	})
	return mux
}

// defaultBuckets are Envoy's default histogram buckets (source/common/stats/histogram_impl.cc,
// HistogramSettingsImpl::defaultBuckets).
var defaultBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
	300000, 600000, 1800000, 3600000}

var promInvalid = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// WritePrometheus writes the plugin's metrics as Envoy's /stats/prometheus does
// (source/server/admin/prometheus_stats.cc): a wasm metric lives in the custom stat namespace
// "wasmcustom", which the output strips without adding Envoy's "envoy_" prefix; every character
// outside [a-zA-Z0-9_] becomes "_", and a name that then starts with a digit is left out. Each
// metric is a "# TYPE <name> <type>" line, its value with empty tags ("<name>{} <value>") and a
// blank line; counters come first, then gauges, then histograms, each sorted by stat name
// compared token by token, as Envoy's symbol table compares them. The plugin's metric names
// carry no tags Envoy's default tag extractors would take out.
func (h *Host) WritePrometheus(w io.Writer) error {
	h.metrics.mu.Lock()
	byKind := map[uint32][]*metric{}
	for _, m := range h.metrics.byName {
		c := *m
		c.samples = slices.Clone(m.samples)
		byKind[m.kind] = append(byKind[m.kind], &c)
	}
	h.metrics.mu.Unlock()
	var b strings.Builder
	for _, kind := range []uint32{MetricCounter, MetricGauge, MetricHistogram} {
		ms := byKind[kind]
		slices.SortFunc(ms, func(a, b *metric) int { return slices.Compare(strings.Split(a.name, "."), strings.Split(b.name, ".")) })
		for _, m := range ms {
			name := promInvalid.ReplaceAllString(m.name, "_")
			if name == "" || name[0] >= '0' && name[0] <= '9' {
				continue
			}
			switch kind {
			case MetricCounter, MetricGauge:
				typ := map[uint32]string{MetricCounter: "counter", MetricGauge: "gauge"}[kind]
				fmt.Fprintf(&b, "# TYPE %s %s\n%s{} %d\n\n", name, typ, name, m.value)
			case MetricHistogram:
				fmt.Fprintf(&b, "# TYPE %s histogram\n", name)
				var sum float64
				for _, s := range m.samples {
					sum += float64(s)
				}
				for _, le := range defaultBuckets {
					n := 0
					for _, s := range m.samples {
						if float64(s) <= le {
							n++
						}
					}
					fmt.Fprintf(&b, "%s_bucket{le=\"%s\"} %d\n", name, strconv.FormatFloat(le, 'g', 32, 64), n)
				}
				fmt.Fprintf(&b, "%s_bucket{le=\"+Inf\"} %d\n%s_sum{} %s\n%s_count{} %d\n\n", name, len(m.samples),
					name, strconv.FormatFloat(sum, 'g', 32, 64), name, len(m.samples))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
