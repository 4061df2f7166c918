//go:build !wasip1

package host

import (
	"fmt"
	"time"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// Register installs the plugin's VM context. Natively the SDK's proxytest emulator replaces it
// with the one given to proxytest.NewEmulatorOption().WithVMContext.
func Register(vm types.VMContext) { proxywasm.SetVMContext(vm) }

// Log writes msg to the host's log at level.
func Log(level LogLevel, msg string) {
	switch level {
	case LevelTrace:
		proxywasm.LogTrace(msg)
	case LevelDebug:
		proxywasm.LogDebug(msg)
	case LevelInfo:
		proxywasm.LogInfo(msg)
	case LevelWarn:
		proxywasm.LogWarn(msg)
	case LevelError:
		proxywasm.LogError(msg)
	default:
		proxywasm.LogCritical(msg)
	}
}

// PluginConfiguration returns the plugin configuration (Envoy: PluginConfig.configuration).
func PluginConfiguration() ([]byte, error) { return proxywasm.GetPluginConfiguration() }

// NowMillis returns the wall clock in milliseconds.
func NowMillis() int64 { return time.Now().UnixMilli() }

// SetTickPeriod arms this VM's timer: OnTick runs every ms milliseconds; 0 disables it.
func SetTickPeriod(ms uint32) error { return proxywasm.SetTickPeriodMilliSeconds(ms) }

// RequestHeader returns the first value of the request header name (lower case).
func RequestHeader(name string) (string, error) { return proxywasm.GetHttpRequestHeader(name) }

// ResponseHeader returns the first value of the response header name (lower case).
func ResponseHeader(name string) (string, error) { return proxywasm.GetHttpResponseHeader(name) }

// HTTPCallResponseHeaders returns the headers, :status included, of the http call whose
// callback is running.
func HTTPCallResponseHeaders() ([][2]string, error) { return proxywasm.GetHttpCallResponseHeaders() }

// HTTPCallResponseBody returns the first size bytes of the body of the http call whose callback
// is running.
func HTTPCallResponseBody(size int) ([]byte, error) {
	return proxywasm.GetHttpCallResponseBody(0, size)
}

// AddResponseHeader adds a response header (call it from OnHttpResponseHeaders).
func AddResponseHeader(name, value string) error {
	return proxywasm.AddHttpResponseHeader(name, value)
}

// SendLocalResponse answers the current stream with status, headers and body; the upstream is
// never reached. The callback that calls it must return types.ActionPause.
func SendLocalResponse(status uint32, headers [][2]string, body []byte) error {
	return proxywasm.SendHttpResponse(status, headers, body, -1)
}

// ResumeRequest continues the current, paused request (see SetEffectiveContext).
func ResumeRequest() error { return proxywasm.ResumeHttpRequest() }

// SetEffectiveContext makes the HTTP context id current, e.g. before resuming it from an http
// call callback.
func SetEffectiveContext(id uint32) error { return proxywasm.SetEffectiveContext(id) }

// Property returns the host property at path (e.g. "source", "address"). The value is valid
// until the next host call that returns data: copy it to keep it.
func Property(path ...string) ([]byte, error) { return proxywasm.GetProperty(path) }

// SharedData returns the value and CAS of key in the VM-id-wide shared data. The value is valid
// until the next host call that returns data: copy it to keep it.
func SharedData(key string) ([]byte, uint32, error) { return proxywasm.GetSharedData(key) }

// SetSharedData stores value under key if cas is 0 or still the key's CAS.
func SetSharedData(key string, value []byte, cas uint32) error {
	return proxywasm.SetSharedData(key, value, cas)
}

// HTTPCall sends a request to the host cluster; cb runs on the root context when the answer (or
// a reset, 0/0/0) arrives. headers must hold :method, :path and :authority.
func HTTPCall(cluster string, headers [][2]string, body []byte, timeoutMs uint32, cb func(numHeaders, bodySize, numTrailers int)) (uint32, error) {
	return proxywasm.DispatchHttpCall(cluster, headers, body, nil, timeoutMs, cb)
}

// DefineMetric defines the metric name of kind for this VM.
func DefineMetric(kind MetricKind, name string) (m Metric, err error) {
	defer recoverErr(&err) // the SDK panics where a host call fails
	switch kind {
	case Counter:
		return Metric(proxywasm.DefineCounterMetric(name)), nil
	case Gauge:
		return Metric(proxywasm.DefineGaugeMetric(name)), nil
	default:
		return Metric(proxywasm.DefineHistogramMetric(name)), nil
	}
}

// Add adds delta to a counter or gauge.
func (m Metric) Add(delta int64) (err error) {
	defer recoverErr(&err)
	proxywasm.MetricGauge(m).Add(delta)
	return nil
}

// Record records value in a histogram, or sets a gauge.
func (m Metric) Record(value uint64) (err error) {
	defer recoverErr(&err)
	proxywasm.MetricHistogram(m).Record(value)
	return nil
}

// Value returns the metric's value as the host sees it.
func (m Metric) Value() (v uint64, err error) {
	defer recoverErr(&err)
	return proxywasm.MetricCounter(m).Value(), nil
}

func recoverErr(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("host: %v", r)
	}
}
