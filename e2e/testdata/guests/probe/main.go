//go:build wasip1

// Command probe is a test guest for the envoyhost tests: built on the same ABI layer as the
// plugin, it does what the request's x-action header says, so that each host behaviour can be
// exercised on its own.
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/floodgate-proxy/floodgate/internal/host"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

func main() {}

func init() { host.Register(&vm{}) }

type vm struct{ types.DefaultVMContext }

func (*vm) NewPluginContext(uint32) types.PluginContext { return &root{} }

type root struct {
	types.DefaultPluginContext
	ticks, requests host.Metric
}

func (r *root) OnPluginStart(int) types.OnPluginStartStatus {
	cfg, _ := host.PluginConfiguration()
	if string(cfg) == "reject" {
		host.Log(host.LevelCritical, "probe: configuration rejected on purpose")
		return types.OnPluginStartStatusFailed
	}
	r.ticks, _ = host.DefineMetric(host.Counter, "probe.ticks")
	r.requests, _ = host.DefineMetric(host.Counter, "probe.requests")
	if string(cfg) == "tick" {
		_ = host.SetTickPeriod(20)
	}
	return types.OnPluginStartStatusOK
}

func (r *root) OnTick() { _ = r.ticks.Add(1) }

func (r *root) NewHttpContext(id uint32) types.HttpContext { return &stream{id: id, root: r} }

type stream struct {
	types.DefaultHttpContext
	id   uint32
	root *root
}

func (s *stream) OnHttpRequestHeaders(int, bool) types.Action {
	_ = s.root.requests.Add(1)
	action, _ := host.RequestHeader("x-action")
	switch action {
	case "count":
		for {
			v, cas, err := host.SharedData("count")
			if err != nil && !errors.Is(err, types.ErrorStatusNotFound) {
				host.Log(host.LevelError, "get: "+err.Error())
				return types.ActionContinue
			}
			var n uint64
			if len(v) == 8 {
				n = binary.LittleEndian.Uint64(v)
			}
			if err != nil {
				// Absent: a CAS of 0 would overwrite another VM's first insert (Envoy inserts a
				// missing key whatever the CAS and CAS 0 always overwrites), so ask for a CAS no
				// value holds: it inserts only while the key is still absent (see store.Update).
				cas = 1<<32 - 1
			}
			err = host.SetSharedData("count", binary.LittleEndian.AppendUint64(nil, n+1), cas)
			if err == nil {
				return types.ActionContinue
			}
			if !errors.Is(err, types.ErrorStatusCasMismatch) {
				host.Log(host.LevelError, "set: "+err.Error())
				return types.ActionContinue
			}
		}
	case "now":
		_ = host.SendLocalResponse(200, [][2]string{{"x-now", strconv.FormatInt(host.NowMillis(), 10)}}, nil)
		return types.ActionPause
	case "sleep":
		time.Sleep(time.Millisecond) // the Go runtime has to wait in netpoll: poll_oneoff
	case "local":
		_ = host.SendLocalResponse(429, [][2]string{{"x-probe", "local"}}, []byte("slow down"))
		return types.ActionPause
	case "property":
		addr, err := host.Property("source", "address")
		if err != nil {
			addr = []byte("error: " + err.Error())
		}
		addr = bytes.Clone(addr) // the host's buffer is reused by the next call
		xff, _ := host.RequestHeader("x-forwarded-for")
		_ = host.SendLocalResponse(200, [][2]string{{"x-source", string(addr)}, {"x-xff", xff}}, nil)
		return types.ActionPause
	case "metadata":
		// The property at the path of x-path ("/"-separated), raw in the body.
		path, _ := host.RequestHeader("x-path")
		v, err := host.Property(strings.Split(path, "/")...)
		if err != nil {
			_ = host.SendLocalResponse(500, [][2]string{{"x-property-error", err.Error()}}, nil)
			return types.ActionPause
		}
		_ = host.SendLocalResponse(200, nil, bytes.Clone(v))
		return types.ActionPause
	case "call":
		cluster, _ := host.RequestHeader("x-cluster")
		timeout, _ := host.RequestHeader("x-timeout")
		ms, _ := strconv.Atoi(timeout)
		id := s.id
		_, err := host.HTTPCall(cluster, [][2]string{{":method", "GET"}, {":path", "/probe"}, {":authority", "probe"}}, nil, uint32(ms),
			func(numHeaders, bodySize, _ int) {
				_ = host.SetEffectiveContext(id)
				status := "reset"
				if numHeaders > 0 {
					hs, _ := host.HTTPCallResponseHeaders()
					for _, kv := range hs {
						if kv[0] == ":status" {
							status = kv[1]
						}
					}
				}
				body, _ := host.HTTPCallResponseBody(bodySize)
				_ = host.SendLocalResponse(200, [][2]string{{"x-call-status", status}}, body)
			})
		if err != nil {
			_ = host.SendLocalResponse(500, [][2]string{{"x-call-error", err.Error()}}, nil)
		}
		return types.ActionPause
	case "resume":
		id := s.id
		_, err := host.HTTPCall("echo", [][2]string{{":method", "GET"}, {":path", "/"}, {":authority", "probe"}}, nil, 1000,
			func(int, int, int) {
				_ = host.SetEffectiveContext(id)
				_ = host.ResumeRequest()
			})
		if err != nil {
			return types.ActionContinue
		}
		return types.ActionPause
	}
	return types.ActionContinue
}

func (s *stream) OnHttpResponseHeaders(int, bool) types.Action {
	_ = host.AddResponseHeader("x-probe-response", "seen")
	return types.ActionContinue
}
