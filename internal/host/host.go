// Package host is the plugin's only door to the proxy-wasm host.
//
// The plugin logic stays host-agnostic: it implements the context interfaces of
// github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types and calls the functions of this
// package. Built for wasip1 they call the ABI directly (internal/abi); built natively they forward
// to the SDK's proxywasm package, so that the same plugin runs under the SDK's proxytest emulator
// (fast tests, race detector, coverage). Errors are the SDK's status errors
// (types.ErrorStatusNotFound, types.ErrorStatusCasMismatch, ...) in both variants, so callers
// test them with errors.Is.
package host

// LogLevel is a proxy-wasm log level.
type LogLevel uint32

// The proxy-wasm log levels.
const (
	LevelTrace LogLevel = iota
	LevelDebug
	LevelInfo
	LevelWarn
	LevelError
	LevelCritical
)

// Metric is a metric the host defined for this VM; the same name on every worker VM sums into
// one statistic (Envoy: wasmcustom.<name>).
type Metric uint32

// MetricKind is the kind of a metric, as numbered by the ABI.
type MetricKind uint32

// The metric kinds of the ABI.
const (
	Counter MetricKind = iota
	Gauge
	Histogram
)
