package jsonloc

import (
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

func TestPathAt(t *testing.T) {
	const doc = `{"a": {"b": [1, {"c": true}], "e": []}, "d": "x"}`
	tests := []struct{ at, want string }{
		{`{"a"`, ""},
		{`"a"`, "a"},
		{`{"b"`, "a"},
		{`"b"`, "a.b"},
		{`[1`, "a.b"},
		{`1,`, "a.b[0]"},
		{`{"c"`, "a.b[1]"},
		{`"c"`, "a.b[1].c"},
		{`true`, "a.b[1].c"},
		{`"e"`, "a.e"},
		{`"d"`, "d"},
		{`"x"`, "d"},
	}
	for _, tc := range tests {
		t.Run(tc.at, func(t *testing.T) {
			off := strings.Index(doc, tc.at)
			if off < 0 {
				t.Fatalf("%q not in the document", tc.at)
			}
			if got := PathAt([]byte(doc), off); got != tc.want {
				t.Fatalf("PathAt(%d) = %q, want %q", off, got, tc.want)
			}
		})
	}
}

// TestProtoJSON: protojson's errors, on one line (what sigs.k8s.io/yaml gives) or several,
// point at the field by its path.
func TestProtoJSON(t *testing.T) {
	tests := []struct{ name, doc, wantPath, wantMsg string }{
		{"unknown field", `{"static_resources":{"clusters":[{"name":"a"},{"name":"b","conect_timeout":"1s"}]}}`,
			"static_resources.clusters[1].conect_timeout", `unknown field "conect_timeout"`},
		{"bad value over several lines", "{\n  \"admin\": {\n    \"address\": {\"socket_address\": {\"port_value\": \"é-x\"}}\n  }\n}",
			"admin.address.socket_address.port_value", "invalid value for uint32"},
		{"unresolvable type", `{"static_resources":{"listeners":[{"filter_chains":[{"filters":[{"name":"f","typed_config":{"@type":"type.googleapis.com/no.Such"}}]}]}]}}`,
			"static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type", "unable to resolve"},
		{"syntax", `{"admin": }`, "admin", "syntax error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := protojson.Unmarshal([]byte(tc.doc), &bootstrapv3.Bootstrap{})
			if err == nil {
				t.Fatal("decoded")
			}
			path, msg := ProtoJSON([]byte(tc.doc), err)
			if path != tc.wantPath || !strings.Contains(msg, tc.wantMsg) || strings.Contains(msg, "line") {
				t.Fatalf("ProtoJSON(%v) = %q, %q; want %q and a message with %q and no position", err, path, msg, tc.wantPath, tc.wantMsg)
			}
		})
	}
}
