package envoyhost

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Front is the HTTP side of a Host: it runs each request through the plugin like Envoy's HTTP
// connection manager with one wasm filter followed by the router, and proxies it to Upstream.
type Front struct {
	Host *Host
	// Upstream is the "host:port" the router sends admitted requests to.
	Upstream string
	// Client sends requests upstream; nil uses a default client.
	Client *http.Client
}

var upstreamClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

// ServeHTTP implements http.Handler.
func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	props := map[string]string{
		"source.address":      r.RemoteAddr,
		"destination.address": localAddr(r),
		"request.path":        r.URL.RequestURI(),
		"request.url_path":    r.URL.Path,
		"request.method":      r.Method,
		"request.host":        r.Host,
		"request.scheme":      "http",
		"request.protocol":    r.Proto,
		"request.id":          strconv.FormatInt(time.Now().UnixNano(), 36),
	}
	s := f.Host.NewStream(props)
	defer s.Done()
	headers := [][2]string{{":authority", r.Host}, {":path", r.URL.RequestURI()}, {":method", r.Method}, {":scheme", "http"}}
	for k, vals := range r.Header {
		for _, v := range vals {
			headers = append(headers, [2]string{strings.ToLower(k), v})
		}
	}
	outcome, err := s.RequestHeaders(ctx, headers, r.ContentLength == 0)
	switch {
	case err != nil && outcome == OutcomeFailed:
		if !f.Host.cfg.FailOpen {
			http.Error(w, "wasm_fail_stream", http.StatusServiceUnavailable)
			return
		}
	case err != nil || outcome == OutcomeReset:
		http.Error(w, "stream reset", http.StatusBadGateway)
		return
	case outcome == OutcomeLocal:
		lr := s.Local()
		for _, kv := range lr.Headers {
			w.Header().Add(kv[0], kv[1])
		}
		w.WriteHeader(lr.Status)
		_, _ = w.Write(lr.Body)
		return
	}
	f.proxy(ctx, w, r, s)
}

func (f *Front) proxy(ctx context.Context, w http.ResponseWriter, r *http.Request, s *Stream) {
	req, err := http.NewRequestWithContext(ctx, r.Method, "http://"+f.Upstream+r.URL.RequestURI(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for _, kv := range s.RequestHeadersNow() {
		if !strings.HasPrefix(kv[0], ":") {
			req.Header.Add(kv[0], kv[1])
		}
	}
	req.Host = r.Host
	client := f.Client
	if client == nil {
		client = upstreamClient
	}
	res, err := client.Do(req)
	if err != nil {
		http.Error(w, "upstream connect error or disconnect/reset before headers", http.StatusServiceUnavailable)
		return
	}
	defer res.Body.Close()
	headers := [][2]string{{":status", strconv.Itoa(res.StatusCode)}}
	for k, vals := range res.Header {
		for _, v := range vals {
			headers = append(headers, [2]string{strings.ToLower(k), v})
		}
	}
	headers, err = s.ResponseHeaders(ctx, headers, res.ContentLength == 0)
	if err != nil && !f.Host.cfg.FailOpen {
		http.Error(w, "wasm_fail_stream", http.StatusServiceUnavailable)
		return
	}
	status := res.StatusCode
	for _, kv := range headers {
		if kv[0] == ":status" {
			status, _ = strconv.Atoi(kv[1])
			continue
		}
		w.Header().Add(kv[0], kv[1])
	}
	w.WriteHeader(status)
	_, _ = io.Copy(w, res.Body)
}

func localAddr(r *http.Request) string {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return a.String()
	}
	return ""
}
