package envoyhost

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/floodgate-proxy/floodgate/internal/abi"
)

// HTTPCallRecord is one proxy_http_call the plugin made.
type HTTPCallRecord struct {
	VM        int
	Cluster   string
	Headers   [][2]string
	Body      []byte
	TimeoutMs uint32
	// Status is the :status delivered to the plugin, 0 for a reset.
	Status int
	// Took is how long the call took until its answer was delivered.
	Took time.Duration
}

type httpCallResponse struct {
	headers, trailers [][2]string
	body              []byte
}

// HTTPCalls returns the calls made so far.
func (h *Host) HTTPCalls() []HTTPCallRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]HTTPCallRecord(nil), h.calls...)
}

var callClient = &http.Client{Transport: &http.Transport{
	MaxIdleConnsPerHost: 64,
	DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
}}

func proxyHTTPCall(v *vm, s []uint64) uint32 {
	cluster, ok1 := v.read(u(s[0]), u(s[1]))
	rawHeaders, ok2 := v.read(u(s[2]), u(s[3]))
	body, ok3 := v.read(u(s[4]), u(s[5]))
	if !ok1 || !ok2 || !ok3 {
		return statusInvalidMemoryAccess
	}
	headers, err := abi.DecodeMap(rawHeaders)
	if err != nil {
		return statusBadArgument
	}
	addr, known := v.host.cfg.Clusters[string(cluster)]
	method, path, authority := first(headers, ":method"), first(headers, ":path"), first(headers, ":authority")
	if !known || method == "" || path == "" || authority == "" {
		return statusBadArgument // Envoy: unknown cluster or missing pseudo-headers, no callback
	}
	v.nextCall++
	token := v.nextCall
	if st := writeU32(v, u(s[9]), token); st != statusOK {
		return st
	}
	rec := HTTPCallRecord{VM: v.index, Cluster: string(cluster), Headers: headers, Body: body, TimeoutMs: u(s[8])}
	v.host.inflight.Add(1)
	go v.sendCall(token, addr, method, path, authority, headers, body, rec)
	return statusOK
}

// sendCall sends the request over loopback and delivers the answer like Envoy's async client:
// a timeout arrives as a 504 response, a connection failure as a 503 response, a stream broken
// after the response started as a reset (0 headers, 0 body, 0 trailers).
func (v *vm) sendCall(token uint32, addr, method, path, authority string, headers [][2]string, body []byte, rec HTTPCallRecord) {
	started := time.Now()
	ctx := context.Background()
	if rec.TimeoutMs > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(rec.TimeoutMs)*time.Millisecond)
		defer cancel()
	}
	resp := callOnce(ctx, addr, method, path, authority, headers, body)
	rec.Took = time.Since(started)
	if resp != nil {
		rec.Status, _ = strconv.Atoi(first(resp.headers, ":status"))
	}
	v.host.mu.Lock()
	v.host.calls = append(v.host.calls, rec)
	v.host.mu.Unlock()
	deliver := func() {
		defer v.host.inflight.Add(-1)
		v.callResp = resp
		if resp == nil {
			resp = &httpCallResponse{}
		}
		_, _ = v.call("proxy_on_http_call_response", rootContextID, uint64(token),
			uint64(len(resp.headers)), uint64(len(resp.body)), uint64(len(resp.trailers)))
		v.callResp = nil
		v.effectiv = nil
	}
	select {
	case v.tasks <- deliver:
	case <-v.done:
		v.host.inflight.Add(-1) // dropped with the VM
	}
}

func localReply(status int, body string) *httpCallResponse {
	return &httpCallResponse{
		headers: [][2]string{{":status", strconv.Itoa(status)}, {"content-length", strconv.Itoa(len(body))}, {"content-type", "text/plain"}},
		body:    []byte(body),
	}
}

func callOnce(ctx context.Context, addr, method, path, authority string, headers [][2]string, body []byte) *httpCallResponse {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return localReply(503, "upstream connect error or disconnect/reset before headers")
	}
	req.Host = authority
	for _, kv := range headers {
		if !strings.HasPrefix(kv[0], ":") {
			req.Header.Add(kv[0], kv[1])
		}
	}
	res, err := callClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return localReply(504, "upstream request timeout")
		}
		return localReply(503, "upstream connect error or disconnect/reset before headers. reset reason: connection failure")
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return localReply(504, "upstream request timeout")
		}
		return nil // the stream broke after the response started: a reset
	}
	out := &httpCallResponse{headers: [][2]string{{":status", strconv.Itoa(res.StatusCode)}}, body: data}
	for k, vals := range res.Header {
		for _, val := range vals {
			out.headers = append(out.headers, [2]string{strings.ToLower(k), val})
		}
	}
	for k, vals := range res.Trailer {
		for _, val := range vals {
			out.trailers = append(out.trailers, [2]string{strings.ToLower(k), val})
		}
	}
	return out
}
