// Package metadata reads Envoy's dynamic metadata the way a proxy-wasm plugin receives it, without
// a protobuf library (the plugin must stay small and wasm-safe).
//
// Envoy answers the property "metadata" with the stream's dynamic metadata, an
// envoy.config.core.v3.Metadata serialized as protobuf (Envoy's wasm context.cc, getProperty:
// a message value is serialized with SerializeToString). Filters put what they want others to
// read there: jwt_authn, with payload_in_metadata set, puts each verified JWT payload under
// filter_metadata["envoy.filters.http.jwt_authn"][<payload_in_metadata>] as a
// google.protobuf.Struct.
//
// Deeper property paths (metadata/filter_metadata/<filter>/...) are answered differently: Envoy
// unwraps a Struct into a CEL map and serializes it as proxy-wasm pairs, whose values carry no
// type (a number is 8 raw bytes, indistinguishable from an 8-byte string) and which fails as a
// whole on a null anywhere in the payload. Reading the whole Metadata message and walking it here
// keeps the types, so this package reads only the protobuf encoding.
//
// Only the fields needed are decoded: Metadata.filter_metadata (1: map<string, Struct>),
// Struct.fields (1: map<string, Value>) and the kinds of Value (1 null, 2 number, 3 string,
// 4 bool, 5 struct, 6 list); everything else is skipped. A map key given twice takes its last
// value, as protobuf parsers do. Malformed input is "not found", never a panic.
package metadata

import (
	"encoding/binary"
	"math"
)

// Wire types of the protobuf encoding.
const (
	wireVarint = 0
	wireI64    = 1
	wireLen    = 2
	wireI32    = 5
)

// field is one decoded field of a message: its number, wire type and value (the varint or fixed
// value in num, the bytes of a length-delimited field in data).
type field struct {
	num  uint64
	wire uint64
	val  uint64
	data []byte
}

// next decodes the field at the start of b and returns the rest; ok is false when b is malformed.
func next(b []byte) (f field, rest []byte, ok bool) {
	tag, n := binary.Uvarint(b)
	if n <= 0 {
		return f, nil, false
	}
	b = b[n:]
	f.num, f.wire = tag>>3, tag&7
	if f.num == 0 {
		return f, nil, false
	}
	switch f.wire {
	case wireVarint:
		if f.val, n = binary.Uvarint(b); n <= 0 {
			return f, nil, false
		}
		return f, b[n:], true
	case wireI64:
		if len(b) < 8 {
			return f, nil, false
		}
		f.val = binary.LittleEndian.Uint64(b)
		return f, b[8:], true
	case wireI32:
		if len(b) < 4 {
			return f, nil, false
		}
		f.val = uint64(binary.LittleEndian.Uint32(b))
		return f, b[4:], true
	case wireLen:
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return f, nil, false
		}
		f.data = b[n : n+int(size)]
		return f, b[n+int(size):], true
	}
	return f, nil, false // groups (3, 4) are long deprecated; 6 and 7 do not exist
}

// mapValue finds key in the map field number num of message msg (entries with the key in field
// 1 and the value in field 2) and returns the value's encoding; a key given twice takes its last
// value. ok is false when the key is absent or msg is malformed.
func mapValue(msg []byte, num uint64, key string) (value []byte, ok bool) {
	for len(msg) > 0 {
		f, rest, good := next(msg)
		if !good {
			return nil, false
		}
		msg = rest
		if f.num != num || f.wire != wireLen {
			continue
		}
		var k, v []byte
		entry := f.data
		for len(entry) > 0 {
			g, rest, good := next(entry)
			if !good || (g.num <= 2 && g.wire != wireLen) {
				return nil, false
			}
			entry = rest
			switch g.num {
			case 1:
				k = g.data
			case 2:
				v = g.data
			}
		}
		if string(k) == key {
			value, ok = v, true // an entry without a value holds the empty message
		}
	}
	return value, ok
}

// Struct is a serialized google.protobuf.Struct.
type Struct []byte

// FilterMetadata returns the Struct Envoy keeps for filter (for example
// "envoy.filters.http.jwt_authn") in md, a serialized envoy.config.core.v3.Metadata.
func FilterMetadata(md []byte, filter string) (Struct, bool) {
	s, ok := mapValue(md, 1, filter)
	return Struct(s), ok
}

// Lookup follows path through nested structs and returns the value at its end.
func (s Struct) Lookup(path ...string) (Value, bool) {
	cur := []byte(s)
	for i, name := range path {
		enc, ok := mapValue(cur, 1, name)
		if !ok {
			return Value{}, false
		}
		v, ok := decodeValue(enc)
		if !ok {
			return Value{}, false
		}
		if i == len(path)-1 {
			return v, true
		}
		if v.Kind != KindStruct {
			return Value{}, false
		}
		cur = v.raw
	}
	return Value{Kind: KindStruct, raw: cur}, true
}

// Kind is the kind of a google.protobuf.Value.
type Kind uint8

// The kinds of a Value, in the order of the fields of google.protobuf.Value.
const (
	KindNone Kind = iota // no kind set: an empty Value
	KindNull
	KindNumber
	KindString
	KindBool
	KindStruct
	KindList
)

// Value is one decoded google.protobuf.Value.
type Value struct {
	Kind Kind
	// Number (KindNumber) and Bool (KindBool).
	Number float64
	Bool   bool
	// raw holds a string's bytes, or the encoding of a struct or a list.
	raw []byte
}

// String returns the value of a KindString value.
func (v Value) String() string {
	if v.Kind != KindString {
		return ""
	}
	return string(v.raw)
}

// Struct returns the value of a KindStruct value.
func (v Value) Struct() Struct {
	if v.Kind != KindStruct {
		return nil
	}
	return Struct(v.raw)
}

// decodeValue decodes a google.protobuf.Value; its kind is a oneof, so the last kind given wins.
func decodeValue(b []byte) (v Value, ok bool) {
	for len(b) > 0 {
		f, rest, good := next(b)
		if !good {
			return Value{}, false
		}
		b = rest
		want := uint64(wireLen)
		switch f.num {
		case 1, 4:
			want = wireVarint
		case 2:
			want = wireI64
		}
		if f.num <= 6 && f.wire != want {
			return Value{}, false
		}
		switch f.num {
		case 1:
			v = Value{Kind: KindNull}
		case 2:
			v = Value{Kind: KindNumber, Number: math.Float64frombits(f.val)}
		case 3:
			v = Value{Kind: KindString, raw: f.data}
		case 4:
			v = Value{Kind: KindBool, Bool: f.val != 0}
		case 5:
			v = Value{Kind: KindStruct, raw: f.data}
		case 6:
			v = Value{Kind: KindList, raw: f.data}
		}
	}
	return v, true
}
