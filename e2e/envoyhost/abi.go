package envoyhost

import (
	"context"
	"strings"
	"time"

	"github.com/floodgate-proxy/floodgate/internal/abi"
	"github.com/tetratelabs/wazero/api"
)

// Proxy-wasm status codes.
const (
	statusOK                   = 0
	statusNotFound             = 1
	statusBadArgument          = 2
	statusSerializationFailure = 3
	statusInvalidMemoryAccess  = 6
	statusCasMismatch          = 8
	statusUnimplemented        = 12
)

// Header map and buffer types of ABI v0.2.1.
const (
	mapRequestHeaders       = 0
	mapRequestTrailers      = 1
	mapResponseHeaders      = 2
	mapResponseTrailers     = 3
	mapHTTPCallRespHeaders  = 6
	mapHTTPCallRespTrailers = 7

	bufRequestBody  = 0
	bufResponseBody = 1
	bufHTTPCallBody = 4
	bufVMConfig     = 6
	bufPluginConfig = 7
)

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

type hostFunc struct {
	params []api.ValueType
	fn     func(v *vm, s []uint64) uint32 // returns the status (ignored for void functions)
	void   bool
}

func n32(n int) []api.ValueType {
	out := make([]api.ValueType, n)
	for i := range out {
		out[i] = i32
	}
	return out
}

// envFunctions are the env.proxy_* functions of ABI v0.2.1 this host provides.
var envFunctions = map[string]hostFunc{
	"proxy_log":                          {params: n32(3), fn: proxyLog},
	"proxy_get_log_level":                {params: n32(1), fn: func(v *vm, s []uint64) uint32 { return writeU32(v, u(s[0]), 0) }},
	"proxy_set_tick_period_milliseconds": {params: n32(1), fn: proxySetTickPeriod},
	"proxy_get_current_time_nanoseconds": {params: n32(1), fn: func(v *vm, s []uint64) uint32 { return writeU64(v, u(s[0]), v.host.pluginNow()) }},
	"proxy_get_buffer_bytes":             {params: n32(5), fn: proxyGetBufferBytes},
	"proxy_set_buffer_bytes":             {params: n32(5), fn: proxySetBufferBytes},
	"proxy_get_header_map_pairs":         {params: n32(3), fn: proxyGetHeaderMapPairs},
	"proxy_set_header_map_pairs":         {params: n32(3), fn: proxySetHeaderMapPairs},
	"proxy_get_header_map_value":         {params: n32(5), fn: proxyGetHeaderMapValue},
	"proxy_add_header_map_value":         {params: n32(5), fn: proxyAddHeaderMapValue},
	"proxy_replace_header_map_value":     {params: n32(5), fn: proxyReplaceHeaderMapValue},
	"proxy_remove_header_map_value":      {params: n32(3), fn: proxyRemoveHeaderMapValue},
	"proxy_get_property":                 {params: n32(4), fn: proxyGetProperty},
	"proxy_set_property":                 {params: n32(4), fn: func(*vm, []uint64) uint32 { return statusUnimplemented }},
	"proxy_get_shared_data":              {params: n32(5), fn: proxyGetSharedData},
	"proxy_set_shared_data":              {params: n32(5), fn: proxySetSharedData},
	"proxy_register_shared_queue":        {params: n32(3), fn: unimplemented},
	"proxy_resolve_shared_queue":         {params: n32(5), fn: unimplemented},
	"proxy_enqueue_shared_queue":         {params: n32(3), fn: unimplemented},
	"proxy_dequeue_shared_queue":         {params: n32(3), fn: unimplemented},
	"proxy_http_call":                    {params: n32(10), fn: proxyHTTPCall},
	"proxy_continue_stream":              {params: n32(1), fn: proxyContinueStream},
	"proxy_close_stream":                 {params: n32(1), fn: proxyCloseStream},
	"proxy_send_local_response":          {params: n32(8), fn: proxySendLocalResponse},
	"proxy_define_metric":                {params: n32(4), fn: proxyDefineMetric},
	"proxy_increment_metric":             {params: []api.ValueType{i32, i64}, fn: proxyIncrementMetric},
	"proxy_record_metric":                {params: []api.ValueType{i32, i64}, fn: proxyRecordMetric},
	"proxy_get_metric":                   {params: n32(2), fn: proxyGetMetric},
	"proxy_set_effective_context":        {params: n32(1), fn: proxySetEffectiveContext},
	"proxy_done":                         {params: nil, fn: func(*vm, []uint64) uint32 { return statusOK }},
	"proxy_call_foreign_function":        {params: n32(6), fn: unimplemented},
}

func unimplemented(*vm, []uint64) uint32 { return statusUnimplemented }

func u(x uint64) uint32 { return uint32(x) }

// instantiateHostModules builds "env" and "wasi_snapshot_preview1".
func (h *Host) instantiateHostModules(ctx context.Context) error {
	for modName, fns := range map[string]map[string]hostFunc{"env": envFunctions, wasiModule: wasiFunctions} {
		b := h.runtime.NewHostModuleBuilder(modName)
		for name, hf := range fns {
			full := modName + "." + name
			count := h.imports[full]
			hf := hf
			var results []api.ValueType
			if !hf.void {
				results = []api.ValueType{i32}
			}
			b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, caller api.Module, stack []uint64) {
				v := vmFrom(ctx)
				if v.mod == nil { // calls made by _initialize, before InstantiateModule returns
					v.mod = caller
				}
				v.checkRestricted(full, count)
				st := hf.fn(v, stack)
				if !hf.void {
					stack[0] = uint64(st)
				}
			}), hf.params, results).Export(name)
		}
		if _, err := b.Instantiate(ctx); err != nil {
			return err
		}
	}
	return nil
}

func writeU32(v *vm, ptr, val uint32) uint32 {
	if !v.mod.Memory().WriteUint32Le(ptr, val) {
		return statusInvalidMemoryAccess
	}
	return statusOK
}

func writeU64(v *vm, ptr uint32, val uint64) uint32 {
	if !v.mod.Memory().WriteUint64Le(ptr, val) {
		return statusInvalidMemoryAccess
	}
	return statusOK
}

func proxyLog(v *vm, s []uint64) uint32 {
	msg, ok := v.read(u(s[1]), u(s[2]))
	if !ok {
		return statusInvalidMemoryAccess
	}
	if u(s[0]) > 6 {
		return statusBadArgument
	}
	v.host.log(v.index, u(s[0]), string(msg))
	return statusOK
}

func proxySetTickPeriod(v *vm, s []uint64) uint32 {
	v.setTick(time.Duration(u(s[0])) * time.Millisecond)
	return statusOK
}

func (v *vm) buffer(t uint32) ([]byte, bool) {
	switch t {
	case bufVMConfig:
		return v.host.cfg.VMConfig, true
	case bufPluginConfig:
		return v.host.cfg.PluginConfig, true
	case bufHTTPCallBody:
		if v.callResp == nil {
			return nil, false
		}
		return v.callResp.body, true
	case bufRequestBody, bufResponseBody:
		if st := v.stream(); st != nil {
			if t == bufRequestBody {
				return st.reqBody, true
			}
			return st.respBody, true
		}
	}
	return nil, false
}

func proxyGetBufferBytes(v *vm, s []uint64) uint32 {
	buf, ok := v.buffer(u(s[0]))
	if !ok {
		return statusNotFound
	}
	start, max := int(u(s[1])), int(u(s[2]))
	if start > len(buf) {
		return statusBadArgument
	}
	end := len(buf)
	if max < end-start {
		end = start + max
	}
	return v.writeOut(buf[start:end], u(s[3]), u(s[4]))
}

func proxySetBufferBytes(v *vm, s []uint64) uint32 {
	st := v.stream()
	if st == nil {
		return statusNotFound
	}
	data, ok := v.read(u(s[3]), u(s[4]))
	if !ok {
		return statusInvalidMemoryAccess
	}
	switch u(s[0]) {
	case bufRequestBody:
		st.reqBody = data
	case bufResponseBody:
		st.respBody = data
	default:
		return statusBadArgument
	}
	return statusOK
}

// headerMap returns the map of type t for the running callback.
func (v *vm) headerMap(t uint32) (*[][2]string, bool) {
	switch t {
	case mapHTTPCallRespHeaders:
		if v.callResp != nil {
			return &v.callResp.headers, true
		}
		return nil, false
	case mapHTTPCallRespTrailers:
		if v.callResp != nil {
			return &v.callResp.trailers, true
		}
		return nil, false
	}
	st := v.stream()
	if st == nil {
		return nil, false
	}
	switch t {
	case mapRequestHeaders:
		return &st.reqHeaders, true
	case mapRequestTrailers:
		return &st.reqTrailers, true
	case mapResponseHeaders:
		return &st.respHeaders, true
	case mapResponseTrailers:
		return &st.respTrailers, true
	}
	return nil, false
}

func proxyGetHeaderMapPairs(v *vm, s []uint64) uint32 {
	m, ok := v.headerMap(u(s[0]))
	if !ok {
		return statusNotFound
	}
	return v.writeOut(abi.EncodeMap(*m), u(s[1]), u(s[2]))
}

func proxySetHeaderMapPairs(v *vm, s []uint64) uint32 {
	m, ok := v.headerMap(u(s[0]))
	if !ok {
		return statusNotFound
	}
	raw, ok := v.read(u(s[1]), u(s[2]))
	if !ok {
		return statusInvalidMemoryAccess
	}
	pairs, err := abi.DecodeMap(raw)
	if err != nil {
		return statusBadArgument
	}
	*m = pairs
	return statusOK
}

func (v *vm) readKV(s []uint64, withValue bool) (key, value string, st uint32) {
	k, ok := v.read(u(s[1]), u(s[2]))
	if !ok {
		return "", "", statusInvalidMemoryAccess
	}
	if withValue {
		val, ok := v.read(u(s[3]), u(s[4]))
		if !ok {
			return "", "", statusInvalidMemoryAccess
		}
		value = string(val)
	}
	return strings.ToLower(string(k)), value, statusOK
}

func proxyGetHeaderMapValue(v *vm, s []uint64) uint32 {
	m, ok := v.headerMap(u(s[0]))
	if !ok {
		return statusNotFound
	}
	key, _, st := v.readKV(s, false)
	if st != statusOK {
		return st
	}
	for _, kv := range *m {
		if kv[0] == key {
			return v.writeOut([]byte(kv[1]), u(s[3]), u(s[4]))
		}
	}
	return statusNotFound
}

func proxyAddHeaderMapValue(v *vm, s []uint64) uint32 {
	m, ok := v.headerMap(u(s[0]))
	if !ok {
		return statusNotFound
	}
	key, val, st := v.readKV(s, true)
	if st != statusOK {
		return st
	}
	*m = append(*m, [2]string{key, val})
	return statusOK
}

func proxyReplaceHeaderMapValue(v *vm, s []uint64) uint32 {
	m, ok := v.headerMap(u(s[0]))
	if !ok {
		return statusNotFound
	}
	key, val, st := v.readKV(s, true)
	if st != statusOK {
		return st
	}
	removeKey(m, key)
	*m = append(*m, [2]string{key, val})
	return statusOK
}

func proxyRemoveHeaderMapValue(v *vm, s []uint64) uint32 {
	m, ok := v.headerMap(u(s[0]))
	if !ok {
		return statusNotFound
	}
	key, _, st := v.readKV(s, false)
	if st != statusOK {
		return st
	}
	removeKey(m, key)
	return statusOK
}

func removeKey(m *[][2]string, key string) {
	out := (*m)[:0]
	for _, kv := range *m {
		if kv[0] != key {
			out = append(out, kv)
		}
	}
	*m = out
}

func proxyGetProperty(v *vm, s []uint64) uint32 {
	raw, ok := v.read(u(s[0]), u(s[1]))
	if !ok {
		return statusInvalidMemoryAccess
	}
	path := strings.TrimRight(string(raw), "\x00")
	switch path {
	case "plugin_name":
		return v.writeOut([]byte(v.host.cfg.PluginName), u(s[2]), u(s[3]))
	case "plugin_root_id":
		return v.writeOut([]byte(v.host.cfg.RootID), u(s[2]), u(s[3]))
	case "plugin_vm_id":
		return v.writeOut([]byte(v.host.cfg.VMID), u(s[2]), u(s[3]))
	}
	st := v.stream()
	if st == nil {
		return statusNotFound // stream properties do not exist in root callbacks
	}
	if path == "metadata" || strings.HasPrefix(path, "metadata\x00") {
		val, status := metadataProperty(st.metadata, strings.Split(path, "\x00")[1:])
		if status != statusOK {
			return status
		}
		return v.writeOut(val, u(s[2]), u(s[3]))
	}
	val, ok := st.props[path]
	if !ok {
		return statusNotFound
	}
	return v.writeOut(val, u(s[2]), u(s[3]))
}

func proxyGetSharedData(v *vm, s []uint64) uint32 {
	key, ok := v.read(u(s[0]), u(s[1]))
	if !ok {
		return statusInvalidMemoryAccess
	}
	val, cas, found := v.host.shared.Get(string(key))
	if !found {
		return statusNotFound
	}
	if st := v.writeOut(val, u(s[2]), u(s[3])); st != statusOK {
		return st
	}
	return writeU32(v, u(s[4]), cas)
}

func proxySetSharedData(v *vm, s []uint64) uint32 {
	key, ok := v.read(u(s[0]), u(s[1]))
	if !ok {
		return statusInvalidMemoryAccess
	}
	val, ok := v.read(u(s[2]), u(s[3]))
	if !ok {
		return statusInvalidMemoryAccess
	}
	if !v.host.shared.Set(string(key), val, u(s[4])) {
		return statusCasMismatch
	}
	return statusOK
}

func proxyContinueStream(v *vm, s []uint64) uint32 {
	st := v.stream()
	if st == nil {
		return statusNotFound
	}
	if u(s[0]) > 1 {
		return statusBadArgument
	}
	st.signal(outcomeContinue)
	return statusOK
}

func proxyCloseStream(v *vm, s []uint64) uint32 {
	st := v.stream()
	if st == nil {
		return statusNotFound
	}
	st.signal(outcomeReset)
	return statusOK
}

func proxySendLocalResponse(v *vm, s []uint64) uint32 {
	st := v.stream()
	if st == nil {
		return statusNotFound
	}
	body, ok1 := v.read(u(s[3]), u(s[4]))
	raw, ok2 := v.read(u(s[5]), u(s[6]))
	if !ok1 || !ok2 {
		return statusInvalidMemoryAccess
	}
	headers, err := abi.DecodeMap(raw)
	if err != nil {
		return statusBadArgument
	}
	for i := range headers {
		headers[i][0] = strings.ToLower(headers[i][0])
	}
	st.local = &LocalResponse{Status: int(u(s[0])), Headers: headers, Body: body}
	st.signal(outcomeLocal)
	return statusOK
}

func proxyDefineMetric(v *vm, s []uint64) uint32 {
	kind := u(s[0])
	if kind > MetricHistogram {
		return statusBadArgument
	}
	name, ok := v.read(u(s[1]), u(s[2]))
	if !ok {
		return statusInvalidMemoryAccess
	}
	m := v.host.metrics.define(kind, string(name))
	id := uint32(len(v.metrics)+1)<<4 | kind
	v.metrics[id] = m
	return writeU32(v, u(s[3]), id)
}

func proxyIncrementMetric(v *vm, s []uint64) uint32 {
	m, ok := v.metrics[u(s[0])]
	if !ok {
		return statusNotFound
	}
	if m.kind == MetricHistogram {
		return statusBadArgument
	}
	v.host.metrics.increment(m, int64(s[1]))
	return statusOK
}

func proxyRecordMetric(v *vm, s []uint64) uint32 {
	m, ok := v.metrics[u(s[0])]
	if !ok {
		return statusNotFound
	}
	v.host.metrics.record(m, s[1])
	return statusOK
}

func proxyGetMetric(v *vm, s []uint64) uint32 {
	m, ok := v.metrics[u(s[0])]
	if !ok {
		return statusNotFound
	}
	return writeU64(v, u(s[1]), v.host.metrics.get(m))
}

func proxySetEffectiveContext(v *vm, s []uint64) uint32 {
	id := u(s[0])
	if id == rootContextID {
		v.effectiv = nil
		return statusOK
	}
	st, ok := v.streams[id]
	if !ok {
		return statusBadArgument
	}
	v.effectiv = st
	return statusOK
}
