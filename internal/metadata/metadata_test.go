package metadata

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// encode serializes dynamic metadata as Envoy hands it to a plugin: filter -> JSON object.
func encode(t testing.TB, filters map[string]string) []byte {
	t.Helper()
	md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
	for name, js := range filters {
		s := &structpb.Struct{}
		if err := s.UnmarshalJSON([]byte(js)); err != nil {
			t.Fatal(err)
		}
		md.FilterMetadata[name] = s
	}
	b, err := proto.Marshal(md)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLookup(t *testing.T) {
	md := encode(t, map[string]string{
		"envoy.filters.http.jwt_authn": `{"payload":{"sub":"alice","tenant":{"id":42,"ok":true,"tags":["a"]},"exp":1700000000,"none":null,"":"empty name"},
			"https://issuer.example.com":{"sub":"bob"}}`,
		"istio_authn": `{"request.auth.principal":"issuer/alice"}`,
	})
	tests := []struct {
		name   string
		filter string
		path   []string
		kind   Kind
		want   string // String() of a string; the number, bool in decimal/words
	}{
		{name: "string claim", filter: "envoy.filters.http.jwt_authn", path: []string{"payload", "sub"}, kind: KindString, want: "alice"},
		{name: "nested number", filter: "envoy.filters.http.jwt_authn", path: []string{"payload", "tenant", "id"}, kind: KindNumber, want: "42"},
		{name: "bool", filter: "envoy.filters.http.jwt_authn", path: []string{"payload", "tenant", "ok"}, kind: KindBool, want: "true"},
		{name: "list", filter: "envoy.filters.http.jwt_authn", path: []string{"payload", "tenant", "tags"}, kind: KindList},
		{name: "struct", filter: "envoy.filters.http.jwt_authn", path: []string{"payload", "tenant"}, kind: KindStruct},
		{name: "null", filter: "envoy.filters.http.jwt_authn", path: []string{"payload", "none"}, kind: KindNull},
		{name: "large number", filter: "envoy.filters.http.jwt_authn", path: []string{"payload", "exp"}, kind: KindNumber, want: "1700000000"},
		{name: "empty field name", filter: "envoy.filters.http.jwt_authn", path: []string{"payload", ""}, kind: KindString, want: "empty name"},
		{name: "issuer as the payload name (older Istio)", filter: "envoy.filters.http.jwt_authn", path: []string{"https://issuer.example.com", "sub"}, kind: KindString, want: "bob"},
		{name: "dotted field name", filter: "istio_authn", path: []string{"request.auth.principal"}, kind: KindString, want: "issuer/alice"},
		{name: "absent claim", filter: "envoy.filters.http.jwt_authn", path: []string{"payload", "nope"}},
		{name: "through a non-struct", filter: "envoy.filters.http.jwt_authn", path: []string{"payload", "sub", "x"}},
		{name: "absent payload name", filter: "envoy.filters.http.jwt_authn", path: []string{"other", "sub"}},
		{name: "absent filter", filter: "envoy.filters.http.ext_authz", path: []string{"payload"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, ok := FilterMetadata(md, tc.filter)
			var v Value
			if ok {
				v, ok = s.Lookup(tc.path...)
			}
			if tc.kind == KindNone {
				if ok {
					t.Fatalf("found %+v, want nothing", v)
				}
				return
			}
			if !ok || v.Kind != tc.kind {
				t.Fatalf("got %+v (found %v), want kind %d", v, ok, tc.kind)
			}
			got := v.String()
			switch v.Kind {
			case KindNumber:
				got = strconv.FormatFloat(v.Number, 'f', -1, 64)
			case KindBool:
				got = map[bool]string{true: "true", false: "false"}[v.Bool]
			}
			if tc.want != "" && got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestMalformed: truncated or hostile encodings are "not found", never a panic.
func TestMalformed(t *testing.T) {
	md := encode(t, map[string]string{"f": `{"payload":{"sub":"alice"}}`})
	for i := 0; i < len(md); i++ {
		if s, ok := FilterMetadata(md[:i], "f"); ok {
			s.Lookup("payload", "sub")
		}
	}
	for _, b := range [][]byte{
		{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}, // a length far beyond the input
		{0x0b, 0x0c},                         // a group
		{0x00},                               // field number 0
		{0x0a, 0x02, 0x08, 0x01},             // a map entry whose key is a varint
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, // an 11-byte varint
	} {
		if _, ok := FilterMetadata(b, "f"); ok {
			t.Errorf("%x: found a struct in garbage", b)
		}
	}
}

// TestRepeatedKeyTakesTheLast: protobuf parsers keep the last entry of a map key given twice.
func TestRepeatedKeyTakesTheLast(t *testing.T) {
	first := encode(t, map[string]string{"f": `{"payload":{"sub":"first"}}`})
	second := encode(t, map[string]string{"f": `{"payload":{"sub":"second"}}`})
	both := append(append([]byte(nil), first...), second...)
	var md corev3.Metadata
	if err := proto.Unmarshal(both, &md); err != nil {
		t.Fatal(err)
	}
	want := md.FilterMetadata["f"].Fields["payload"].GetStructValue().Fields["sub"].GetStringValue()
	s, _ := FilterMetadata(both, "f")
	if v, ok := s.Lookup("payload", "sub"); !ok || v.String() != want || want != "second" {
		t.Fatalf("got %q, protobuf says %q", v.String(), want)
	}
}

// FuzzLookupAgainstProtobuf compares the reader with the protobuf library: for any JSON payload
// Envoy could hold, every top-level field reads the same; and any bytes at all are read without
// a panic.
func FuzzLookupAgainstProtobuf(f *testing.F) {
	f.Add(`{"sub":"alice","n":1.5,"b":false,"o":{"x":[1,"y",null]},"z":null}`, []byte{0x0a, 0x03})
	f.Add(`{"":""}`, []byte{})
	f.Fuzz(func(t *testing.T, payload string, garbage []byte) {
		if s, ok := FilterMetadata(garbage, "f"); ok {
			s.Lookup("payload", "sub")
		}
		var obj map[string]any
		if json.Unmarshal([]byte(payload), &obj) != nil {
			return
		}
		ps, err := structpb.NewStruct(obj)
		if err != nil {
			return
		}
		md, err := proto.Marshal(&corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"f": {Fields: map[string]*structpb.Value{"payload": structpb.NewStructValue(ps)}}}})
		if err != nil {
			t.Fatal(err)
		}
		s, ok := FilterMetadata(md, "f")
		if !ok {
			t.Fatal("the filter's struct was not found")
		}
		for name, want := range ps.Fields {
			got, ok := s.Lookup("payload", name)
			if !ok {
				t.Fatalf("%q not found", name)
			}
			if !same(got, want) {
				t.Fatalf("%q: got %+v, want %v", name, got, want)
			}
		}
		if _, ok := s.Lookup("payload", "\x00absent"); ok && ps.Fields["\x00absent"] == nil {
			t.Fatal("found an absent field")
		}
	})
}

func same(got Value, want *structpb.Value) bool {
	switch k := want.Kind.(type) {
	case *structpb.Value_NullValue:
		return got.Kind == KindNull
	case *structpb.Value_NumberValue:
		return got.Kind == KindNumber && (got.Number == k.NumberValue || math.IsNaN(got.Number) && math.IsNaN(k.NumberValue))
	case *structpb.Value_StringValue:
		return got.Kind == KindString && got.String() == k.StringValue
	case *structpb.Value_BoolValue:
		return got.Kind == KindBool && got.Bool == k.BoolValue
	case *structpb.Value_StructValue:
		if got.Kind != KindStruct {
			return false
		}
		for name, w := range k.StructValue.Fields {
			g, ok := got.Struct().Lookup(name)
			if !ok || !same(g, w) {
				return false
			}
		}
		return true
	case *structpb.Value_ListValue:
		return got.Kind == KindList
	}
	return false
}
