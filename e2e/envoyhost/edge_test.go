package envoyhost

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/floodgate-proxy/floodgate/internal/abi"
	"github.com/floodgate-proxy/floodgate/internal/bootstrap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// jwtMetadata is what jwt_authn leaves with payload_in_metadata: payload.
func jwtMetadata(t *testing.T, payload string) *corev3.Metadata {
	t.Helper()
	ps := &structpb.Struct{}
	if err := ps.UnmarshalJSON([]byte(payload)); err != nil {
		t.Fatal(err)
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"envoy.filters.http.jwt_authn": {Fields: map[string]*structpb.Value{"payload": structpb.NewStructValue(ps)}}}}
}

// TestMetadataPropertyLikeEnvoy: the guest reads dynamic metadata as Envoy serves it: the
// Metadata message as protobuf at "metadata", native values below it (getProperty and
// serializeValue in Envoy's source/extensions/common/wasm/context.cc).
func TestMetadataPropertyLikeEnvoy(t *testing.T) {
	h := newHost(t, Config{Wasm: guest(t, "probe"), VMs: 1})
	md := jwtMetadata(t, `{"sub":"alice","n":42,"ok":true,"o":{"k":"v"},"l":["x","y"],"nil":null}`)
	const jwt = "metadata/filter_metadata/envoy.filters.http.jwt_authn/payload/"
	tests := []struct {
		path string
		want []byte
		err  string
	}{
		{path: jwt + "sub", want: []byte("alice")},
		{path: jwt + "n", want: binary.LittleEndian.AppendUint64(nil, math.Float64bits(42))},
		{path: jwt + "ok", want: []byte{1}},
		{path: jwt + "o", want: abi.EncodeMap([][2]string{{"k", "v"}})},
		{path: jwt + "l", want: abi.EncodeMap([][2]string{{"x", ""}, {"y", ""}})},
		{path: jwt + "l/1", want: []byte("y")},
		{path: jwt + "nil", err: "status 3"},                  // SerializationFailure
		{path: strings.TrimSuffix(jwt, "/"), err: "status 3"}, // a null anywhere below fails the whole map
		{path: jwt + "absent", err: "not found"},
		{path: "metadata/typed_filter_metadata", err: "not found"},
	}
	run := func(path string, md *corev3.Metadata) *LocalResponse {
		s := h.NewStream(nil)
		s.SetMetadata(md)
		o, err := s.RequestHeaders(context.Background(), [][2]string{{":path", "/"}, {"x-action", "metadata"}, {"x-path", path}}, true)
		if err != nil || o != OutcomeLocal {
			t.Fatalf("%s: outcome %v, %v", path, o, err)
		}
		_ = s.Done()
		return s.Local()
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			lr := run(tc.path, md)
			if tc.err != "" {
				if !strings.Contains(lr.Header("x-property-error"), tc.err) {
					t.Fatalf("status %d, error %q, want %q", lr.Status, lr.Header("x-property-error"), tc.err)
				}
				return
			}
			if lr.Status != 200 || string(lr.Body) != string(tc.want) {
				t.Fatalf("got %d %x, want %x", lr.Status, lr.Body, tc.want)
			}
		})
	}
	t.Run("metadata", func(t *testing.T) {
		var got corev3.Metadata
		if err := proto.Unmarshal(run("metadata", md).Body, &got); err != nil || !proto.Equal(&got, md) {
			t.Fatalf("got %v (%v), want the Metadata message", &got, err)
		}
		if lr := run("metadata", nil); lr.Status != 200 || len(lr.Body) != 0 {
			t.Fatalf("a stream without metadata: %d %x, want an empty message", lr.Status, lr.Body)
		}
	})
}

// TestFrontRunsTheConnectionManagerModel: the plugin sees the source.address and the
// X-Forwarded-For the connection manager leaves, and the upstream gets the same header.
func TestFrontRunsTheConnectionManagerModel(t *testing.T) {
	var upstreamXFF string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamXFF = strings.Join(r.Header.Values("X-Forwarded-For"), "|")
	}))
	defer upstream.Close()
	h := newHost(t, Config{Wasm: guest(t, "probe"), VMs: 1})
	front := &Front{Host: h, Upstream: hostPort(upstream.URL),
		ConnManager: bootstrap.ConnManager{UseRemoteAddress: true, XffNumTrustedHops: 1}}
	req := func(action string, xff ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/x", nil)
		r.RemoteAddr = "10.9.9.9:40000"
		r.Header.Set("x-action", action)
		for _, v := range xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		w := httptest.NewRecorder()
		front.ServeHTTP(w, r)
		return w
	}
	w := req("property", "6.6.6.6", "1.1.1.1")
	if got := w.Header()["x-source"]; len(got) != 1 || got[0] != "1.1.1.1:0" {
		t.Errorf("source.address %q, want the trusted client address 1.1.1.1:0", got)
	}
	if got := w.Header()["x-xff"]; len(got) != 1 || got[0] != "6.6.6.6,1.1.1.1,10.9.9.9" {
		t.Errorf("the plugin saw x-forwarded-for %q", got)
	}
	req("", "1.1.1.1")
	if upstreamXFF != "1.1.1.1,10.9.9.9" {
		t.Errorf("the upstream got x-forwarded-for %q", upstreamXFF)
	}
}

// TestFrontWritesLowerCaseHeaderNames: Envoy's HTTP/1 codec writes header names in lower case;
// so does the gateway, for local answers and for the upstream's.
func TestFrontWritesLowerCaseHeaderNames(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", "yes")
		io.WriteString(w, "hello")
	}))
	defer upstream.Close()
	h := newHost(t, Config{Wasm: guest(t, "probe"), VMs: 1})
	front := httptest.NewServer(&Front{Host: h, Upstream: hostPort(upstream.URL), LocalAddress: netip.MustParseAddr("192.0.2.1")})
	defer front.Close()
	for _, tc := range []struct {
		action string
		want   []string
	}{
		{action: "local", want: []string{"HTTP/1.1 429 ", "\r\nx-probe: local\r\n", "\r\ndate: ", "\r\nserver: envoy\r\n"}},
		{action: "", want: []string{"HTTP/1.1 200 ", "\r\nx-upstream: yes\r\n", "\r\nx-probe-response: seen\r\n", "\r\ncontent-type: text/plain; charset=utf-8\r\n"}},
	} {
		conn, err := net.Dial("tcp", hostPort(front.URL))
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, "GET /x HTTP/1.1\r\nHost: test\r\nx-action: "+tc.action+"\r\nConnection: close\r\n\r\n")
		raw, _ := io.ReadAll(bufio.NewReader(conn))
		conn.Close()
		head, _, _ := strings.Cut(string(raw), "\r\n\r\n")
		for _, w := range tc.want {
			if !strings.Contains(head+"\r\n", w) {
				t.Errorf("action %q: %q not in\n%s", tc.action, w, head)
			}
		}
		for _, line := range strings.Split(head, "\r\n")[1:] {
			name, _, _ := strings.Cut(line, ":")
			if name != strings.ToLower(name) && name != "Content-Length" && name != "Connection" { // framing: net/http's
				t.Errorf("action %q: header %q is not lower case", tc.action, name)
			}
		}
	}
}

// TestPrometheusLikeEnvoy: /stats/prometheus and /stats?format=prometheus give wasm metrics as
// Envoy's admin does: the wasmcustom namespace stripped, no envoy_ prefix, names sanitized, empty
// tags, counters sorted by name.
func TestPrometheusLikeEnvoy(t *testing.T) {
	h := newHost(t, Config{Wasm: guest(t, "probe"), VMs: 2})
	for i := 0; i < 3; i++ {
		request(t, h, "")
	}
	admin := httptest.NewServer(h.AdminHandler())
	defer admin.Close()
	const want = "# TYPE probe_requests counter\nprobe_requests{} 3\n\n# TYPE probe_ticks counter\nprobe_ticks{} 0\n\n"
	for _, path := range []string{"/stats/prometheus", "/stats?format=prometheus"} {
		res, err := http.Get(admin.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(body) != want {
			t.Errorf("%s:\n%s\nwant:\n%s", path, body, want)
		}
	}
	res, err := http.Get(admin.URL + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), "wasmcustom.probe.requests: 3\n") {
		t.Errorf("/stats:\n%s", body)
	}
}

// TestPrometheusNamesAndOrder: names are sanitized and sorted token by token as Envoy's symbol
// table sorts them ("a.x" before "a-b.x", although "-" sorts before "."), and a name that starts
// with a digit once sanitized is left out.
func TestPrometheusNamesAndOrder(t *testing.T) {
	h := &Host{metrics: newMetricStore()}
	for _, n := range []string{"floodgate.a-b.allowed", "floodgate.a.allowed", "9lives"} {
		h.metrics.increment(h.metrics.define(MetricCounter, n), 1)
	}
	h.metrics.record(h.metrics.define(MetricHistogram, "h.ms"), 7)
	var b strings.Builder
	if err := h.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	i, j := strings.Index(out, "floodgate_a_allowed{} 1"), strings.Index(out, "floodgate_a_b_allowed{} 1")
	if i < 0 || j < i || strings.Contains(out, "9lives") {
		t.Fatalf("output:\n%s", out)
	}
	for _, w := range []string{"# TYPE h_ms histogram\n", "h_ms_bucket{le=\"5\"} 0\n", "h_ms_bucket{le=\"10\"} 1\n",
		"h_ms_bucket{le=\"3600000\"} 1\n", "h_ms_bucket{le=\"+Inf\"} 1\nh_ms_sum{} 7\nh_ms_count{} 1\n\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("%q not in\n%s", w, out)
		}
	}
}
