package envoyhost

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/floodgate-proxy/floodgate/internal/bootstrap"
)

// Front is the HTTP side of a Host: it runs each request through the plugin like Envoy's HTTP
// connection manager with one wasm filter followed by the router, and proxies it to Upstream.
// Before the plugin runs, the connection manager model (MutateRequest) decides the client's
// address and rewrites X-Forwarded-For; answers go out with lower-case header names, as Envoy's
// HTTP/1 codec writes them.
type Front struct {
	Host *Host
	// Upstream is the "host:port" the router sends admitted requests to.
	Upstream string
	// Client sends requests upstream; nil uses a default client.
	Client *http.Client
	// ConnManager is the connection manager's configuration (envoy.yaml: use_remote_address,
	// xff_num_trusted_hops, ...); the zero value is Envoy's default.
	ConnManager bootstrap.ConnManager
	// LocalAddress is what Envoy appends to X-Forwarded-For for a loopback peer, the node's own
	// address (local_info); zero: 127.0.0.1.
	LocalAddress netip.Addr
	// Metadata, when set, gives each request the dynamic metadata that HTTP filters before the
	// plugin would have left (jwt_authn is not modelled: tests say what it verified).
	Metadata func(*http.Request) *corev3.Metadata
}

var upstreamClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

// ServeHTTP implements http.Handler.
func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		http.Error(w, "peer address: "+err.Error(), http.StatusBadRequest)
		return
	}
	headers := [][2]string{{":authority", r.Host}, {":path", r.URL.RequestURI()}, {":method", r.Method}, {":scheme", "http"}}
	for k, vals := range r.Header {
		for _, v := range vals {
			headers = append(headers, [2]string{strings.ToLower(k), v})
		}
	}
	local := f.LocalAddress
	if !local.IsValid() {
		local = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	cm := MutateRequest(f.ConnManager, local, peer, headers)
	props := map[string]string{
		"source.address":      cm.Remote.String(),
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
	if f.Metadata != nil {
		s.SetMetadata(f.Metadata(r))
	}
	outcome, err := s.RequestHeaders(ctx, cm.Headers, r.ContentLength == 0)
	switch {
	case err != nil && outcome == OutcomeFailed:
		if !f.Host.cfg.FailOpen {
			writeLocal(w, http.StatusServiceUnavailable, "wasm_fail_stream")
			return
		}
	case err != nil || outcome == OutcomeReset:
		writeLocal(w, http.StatusBadGateway, "stream reset")
		return
	case outcome == OutcomeLocal:
		lr := s.Local()
		writeHeaders(w, lr.Headers)
		w.WriteHeader(lr.Status)
		_, _ = w.Write(lr.Body)
		return
	}
	f.proxy(ctx, w, r, s)
}

// writeHeaders sets the answer's headers under lower-case names, as Envoy's HTTP/1 codec writes
// them (net/http would write Header.Add's canonical "Ratelimit-Policy"; it writes a key set
// directly as it is). Like Envoy's connection manager, it sets date and server itself; framing
// stays net/http's: content-length goes under the canonical name net/http reads, connection and
// transfer-encoding are its own, and nothing is content-sniffed.
func writeHeaders(w http.ResponseWriter, headers [][2]string) {
	h := w.Header()
	h["Content-Type"], h["Date"] = nil, nil // nil: net/http adds neither
	for _, kv := range headers {
		switch {
		case strings.HasPrefix(kv[0], ":"):
		case kv[0] == "content-length":
			h["Content-Length"] = []string{kv[1]}
		case kv[0] == "connection", kv[0] == "transfer-encoding", kv[0] == "date", kv[0] == "server":
		default:
			h[kv[0]] = append(h[kv[0]], kv[1])
		}
	}
	h["date"] = []string{time.Now().UTC().Format(http.TimeFormat)}
	h["server"] = []string{"envoy"}
}

// writeLocal answers with a plain-text body, as Envoy's local replies do.
func writeLocal(w http.ResponseWriter, status int, body string) {
	writeHeaders(w, [][2]string{{"content-type", "text/plain"}})
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body+"\n")
}

func (f *Front) proxy(ctx context.Context, w http.ResponseWriter, r *http.Request, s *Stream) {
	req, err := http.NewRequestWithContext(ctx, r.Method, "http://"+f.Upstream+r.URL.RequestURI(), r.Body)
	if err != nil {
		writeLocal(w, http.StatusBadGateway, err.Error())
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
		writeLocal(w, http.StatusServiceUnavailable, "upstream connect error or disconnect/reset before headers")
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
		writeLocal(w, http.StatusServiceUnavailable, "wasm_fail_stream")
		return
	}
	status := res.StatusCode
	for _, kv := range headers {
		if kv[0] == ":status" {
			status, _ = strconv.Atoi(kv[1])
		}
	}
	writeHeaders(w, headers)
	w.WriteHeader(status)
	_, _ = io.Copy(w, res.Body)
}

func localAddr(r *http.Request) string {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return a.String()
	}
	return ""
}
