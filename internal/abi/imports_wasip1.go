//go:build wasip1

package abi

import "unsafe"

// The env.proxy_* host functions of ABI v0.2.1. Pointers and sizes are i32 on the wire; Go's
// wasm port passes unsafe.Pointer as i32 and the sizes are declared uint32. Every function
// returns a proxy-wasm status code.

//go:wasmimport env proxy_log
//go:noescape
func ProxyLog(level uint32, msg unsafe.Pointer, size uint32) uint32

//go:wasmimport env proxy_set_tick_period_milliseconds
//go:noescape
func ProxySetTickPeriodMilliseconds(period uint32) uint32

//go:wasmimport env proxy_get_current_time_nanoseconds
//go:noescape
func ProxyGetCurrentTimeNanoseconds(ret unsafe.Pointer) uint32

//go:wasmimport env proxy_get_buffer_bytes
//go:noescape
func ProxyGetBufferBytes(bufferType, start, maxSize uint32, retData, retSize unsafe.Pointer) uint32

//go:wasmimport env proxy_set_buffer_bytes
//go:noescape
func ProxySetBufferBytes(bufferType, start, size uint32, data unsafe.Pointer, dataSize uint32) uint32

//go:wasmimport env proxy_get_header_map_pairs
//go:noescape
func ProxyGetHeaderMapPairs(mapType uint32, retData, retSize unsafe.Pointer) uint32

//go:wasmimport env proxy_set_header_map_pairs
//go:noescape
func ProxySetHeaderMapPairs(mapType uint32, data unsafe.Pointer, size uint32) uint32

//go:wasmimport env proxy_get_header_map_value
//go:noescape
func ProxyGetHeaderMapValue(mapType uint32, key unsafe.Pointer, keySize uint32, retData, retSize unsafe.Pointer) uint32

//go:wasmimport env proxy_add_header_map_value
//go:noescape
func ProxyAddHeaderMapValue(mapType uint32, key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32) uint32

//go:wasmimport env proxy_replace_header_map_value
//go:noescape
func ProxyReplaceHeaderMapValue(mapType uint32, key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32) uint32

//go:wasmimport env proxy_remove_header_map_value
//go:noescape
func ProxyRemoveHeaderMapValue(mapType uint32, key unsafe.Pointer, keySize uint32) uint32

//go:wasmimport env proxy_get_property
//go:noescape
func ProxyGetProperty(path unsafe.Pointer, pathSize uint32, retData, retSize unsafe.Pointer) uint32

//go:wasmimport env proxy_get_shared_data
//go:noescape
func ProxyGetSharedData(key unsafe.Pointer, keySize uint32, retData, retSize, retCas unsafe.Pointer) uint32

//go:wasmimport env proxy_set_shared_data
//go:noescape
func ProxySetSharedData(key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32, cas uint32) uint32

//go:wasmimport env proxy_http_call
//go:noescape
func ProxyHttpCall(cluster unsafe.Pointer, clusterSize uint32, headers unsafe.Pointer, headersSize uint32, body unsafe.Pointer, bodySize uint32, trailers unsafe.Pointer, trailersSize uint32, timeoutMs uint32, retToken unsafe.Pointer) uint32

//go:wasmimport env proxy_continue_stream
//go:noescape
func ProxyContinueStream(streamType uint32) uint32

//go:wasmimport env proxy_send_local_response
//go:noescape
func ProxySendLocalResponse(status uint32, details unsafe.Pointer, detailsSize uint32, body unsafe.Pointer, bodySize uint32, headers unsafe.Pointer, headersSize uint32, grpcStatus int32) uint32

//go:wasmimport env proxy_define_metric
//go:noescape
func ProxyDefineMetric(metricType uint32, name unsafe.Pointer, nameSize uint32, retID unsafe.Pointer) uint32

//go:wasmimport env proxy_increment_metric
//go:noescape
func ProxyIncrementMetric(id uint32, offset int64) uint32

//go:wasmimport env proxy_record_metric
//go:noescape
func ProxyRecordMetric(id uint32, value uint64) uint32

//go:wasmimport env proxy_get_metric
//go:noescape
func ProxyGetMetric(id uint32, ret unsafe.Pointer) uint32

//go:wasmimport env proxy_set_effective_context
//go:noescape
func ProxySetEffectiveContext(id uint32) uint32
