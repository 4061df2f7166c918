//go:build wasip1

package host

import (
	"bytes"
	"errors"
	"strconv"
	"time"
	"unsafe"

	"github.com/floodgate-proxy/floodgate/internal/abi"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// Register installs the plugin's VM context. Call it from init().
func Register(vm types.VMContext) { abi.SetVMContext(vm) }

const (
	mapRequestHeaders       = 0
	mapResponseHeaders      = 2
	mapHTTPCallResponseHdrs = 6
	bufferHTTPCallResponse  = 4
	bufferPluginConfig      = 7
	streamRequest           = 0
)

func statusErr(st uint32) error {
	switch st {
	case 0:
		return nil
	case 1:
		return types.ErrorStatusNotFound
	case 2:
		return types.ErrorStatusBadArgument
	case 7:
		return types.ErrorStatusEmpty
	case 8:
		return types.ErrorStatusCasMismatch
	case 10:
		return types.ErrorInternalFailure
	case 12:
		return types.ErrorUnimplemented
	}
	return errors.New("host: status " + strconv.FormatUint(uint64(st), 10))
}

func strPtr(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// Log writes msg to the host's log at level.
func Log(level LogLevel, msg string) {
	abi.ProxyLog(uint32(level), strPtr(msg), uint32(len(msg)))
}

// PluginConfiguration returns the plugin configuration (Envoy: PluginConfig.configuration).
func PluginConfiguration() ([]byte, error) {
	var ptr, size uint32
	st := abi.ProxyGetBufferBytes(bufferPluginConfig, 0, 1<<31-1, unsafe.Pointer(&ptr), unsafe.Pointer(&size))
	buf := bytes.Clone(abi.Take(ptr, size))
	return buf, statusErr(st)
}

// NowMillis returns the host's wall clock in milliseconds: one host call, where time.Now costs
// two (wall and monotonic clocks). Every worker VM of a proxy reads the same clock.
func NowMillis() int64 {
	var ns uint64
	if abi.ProxyGetCurrentTimeNanoseconds(unsafe.Pointer(&ns)) != 0 {
		return time.Now().UnixMilli()
	}
	return int64(ns / 1e6)
}

// SetTickPeriod arms this VM's timer: OnTick runs every ms milliseconds; 0 disables it.
func SetTickPeriod(ms uint32) error { return statusErr(abi.ProxySetTickPeriodMilliseconds(ms)) }

// RequestHeader returns the first value of the request header name (lower case).
func RequestHeader(name string) (string, error) {
	return mapValue(mapRequestHeaders, name)
}

// ResponseHeader returns the first value of the response header name (lower case).
func ResponseHeader(name string) (string, error) {
	return mapValue(mapResponseHeaders, name)
}

// HTTPCallResponseHeaders returns the headers, :status included, of the http call whose
// callback is running.
func HTTPCallResponseHeaders() ([][2]string, error) {
	var ptr, size uint32
	st := abi.ProxyGetHeaderMapPairs(mapHTTPCallResponseHdrs, unsafe.Pointer(&ptr), unsafe.Pointer(&size))
	buf := abi.Take(ptr, size)
	if err := statusErr(st); err != nil {
		return nil, err
	}
	return abi.DecodeMap(buf)
}

// HTTPCallResponseBody returns the first size bytes of the body of the http call whose callback
// is running.
func HTTPCallResponseBody(size int) ([]byte, error) {
	var ptr, n uint32
	st := abi.ProxyGetBufferBytes(bufferHTTPCallResponse, 0, uint32(size), unsafe.Pointer(&ptr), unsafe.Pointer(&n))
	buf := bytes.Clone(abi.Take(ptr, n))
	return buf, statusErr(st)
}

func mapValue(mapType uint32, name string) (string, error) {
	var ptr, size uint32
	st := abi.ProxyGetHeaderMapValue(mapType, strPtr(name), uint32(len(name)), unsafe.Pointer(&ptr), unsafe.Pointer(&size))
	buf := abi.Take(ptr, size)
	if err := statusErr(st); err != nil {
		return "", err
	}
	return string(buf), nil
}

// AddResponseHeader adds a response header (call it from OnHttpResponseHeaders).
func AddResponseHeader(name, value string) error {
	return statusErr(abi.ProxyAddHeaderMapValue(mapResponseHeaders, strPtr(name), uint32(len(name)), strPtr(value), uint32(len(value))))
}

var localHeaders []byte

// SendLocalResponse answers the current stream with status, headers and body; the upstream is
// never reached. The callback that calls it must return types.ActionPause.
func SendLocalResponse(status uint32, headers [][2]string, body []byte) error {
	h := abi.AppendMap(localHeaders[:0], headers)
	localHeaders = h // the host copies the headers during the call: the buffer is reused
	return statusErr(abi.ProxySendLocalResponse(status, nil, 0, bytesPtr(body), uint32(len(body)), bytesPtr(h), uint32(len(h)), -1))
}

// ResumeRequest continues the current, paused request (see SetEffectiveContext).
func ResumeRequest() error { return statusErr(abi.ProxyContinueStream(streamRequest)) }

// SetEffectiveContext makes the HTTP context id current, e.g. before resuming it from an http
// call callback.
func SetEffectiveContext(id uint32) error { return statusErr(abi.ProxySetEffectiveContext(id)) }

// propertyPath is Property's reusable buffer for the path's wire form.
var propertyPath []byte

// Property returns the host property at path (e.g. "source", "address"). The value is valid
// until the next host call that returns data: copy it to keep it.
func Property(path ...string) ([]byte, error) {
	p := propertyPath[:0]
	for i, part := range path {
		if i > 0 {
			p = append(p, 0)
		}
		p = append(p, part...)
	}
	propertyPath = p
	var ptr, size uint32
	st := abi.ProxyGetProperty(bytesPtr(p), uint32(len(p)), unsafe.Pointer(&ptr), unsafe.Pointer(&size))
	buf := abi.Take(ptr, size)
	return buf, statusErr(st)
}

// SharedData returns the value and CAS of key in the VM-id-wide shared data. The value is valid
// until the next host call that returns data: copy it to keep it.
func SharedData(key string) ([]byte, uint32, error) {
	var ptr, size, cas uint32
	st := abi.ProxyGetSharedData(strPtr(key), uint32(len(key)), unsafe.Pointer(&ptr), unsafe.Pointer(&size), unsafe.Pointer(&cas))
	buf := abi.Take(ptr, size)
	if err := statusErr(st); err != nil {
		return nil, 0, err
	}
	return buf, cas, nil
}

// SetSharedData stores value under key if cas is 0 or still the key's CAS.
func SetSharedData(key string, value []byte, cas uint32) error {
	return statusErr(abi.ProxySetSharedData(strPtr(key), uint32(len(key)), bytesPtr(value), uint32(len(value)), cas))
}

// HTTPCall sends a request to the host cluster; cb runs on the root context when the answer (or
// a reset, 0/0/0) arrives. headers must hold :method, :path and :authority.
func HTTPCall(cluster string, headers [][2]string, body []byte, timeoutMs uint32, cb func(numHeaders, bodySize, numTrailers int)) (uint32, error) {
	h := abi.EncodeMap(headers)
	t := abi.EncodeMap(nil)
	var token uint32
	st := abi.ProxyHttpCall(strPtr(cluster), uint32(len(cluster)), bytesPtr(h), uint32(len(h)), bytesPtr(body), uint32(len(body)), bytesPtr(t), uint32(len(t)), timeoutMs, unsafe.Pointer(&token))
	if err := statusErr(st); err != nil {
		return 0, err
	}
	abi.RegisterCallout(token, cb)
	return token, nil
}

// DefineMetric defines the metric name of kind for this VM.
func DefineMetric(kind MetricKind, name string) (Metric, error) {
	var id uint32
	st := abi.ProxyDefineMetric(uint32(kind), strPtr(name), uint32(len(name)), unsafe.Pointer(&id))
	return Metric(id), statusErr(st)
}

// Add adds delta to a counter or gauge.
func (m Metric) Add(delta int64) error { return statusErr(abi.ProxyIncrementMetric(uint32(m), delta)) }

// Record records value in a histogram, or sets a gauge.
func (m Metric) Record(value uint64) error { return statusErr(abi.ProxyRecordMetric(uint32(m), value)) }

// Value returns the metric's value as the host sees it.
func (m Metric) Value() (uint64, error) {
	var v uint64
	st := abi.ProxyGetMetric(uint32(m), unsafe.Pointer(&v))
	return v, statusErr(st)
}
