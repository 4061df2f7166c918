package envoyhost

import (
	"encoding/binary"
	"math"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/floodgate-proxy/floodgate/internal/abi"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// SetMetadata sets the stream's dynamic metadata, as HTTP filters running before the plugin
// leave it (jwt_authn with payload_in_metadata writes the verified payload under
// filter_metadata["envoy.filters.http.jwt_authn"]). Those filters are not modelled: tests set
// what they would have left.
func (s *Stream) SetMetadata(md *corev3.Metadata) { s.metadata = md }

// metadataProperty answers the property metadata/<path...> the way Envoy's wasm context does
// (source/extensions/common/wasm/context.cc, getProperty and serializeValue): "metadata" alone
// is the envoy.config.core.v3.Metadata message, serialized as protobuf; below it the path walks
// the message's fields, then maps (a Struct is unwrapped into a CEL map) and lists (by index),
// and the value at its end is serialized natively: a string as its bytes, a number as 8 bytes of
// a little-endian double, a bool as one byte, a map as proxy-wasm pairs of serialized keys and
// values, a list as pairs with empty values; a null fails with SerializationFailure.
// typed_filter_metadata is not modelled.
func metadataProperty(md *corev3.Metadata, path []string) ([]byte, uint32) {
	if md == nil {
		md = &corev3.Metadata{} // every stream has (empty) dynamic metadata
	}
	if len(path) == 0 {
		b, err := proto.Marshal(md)
		if err != nil {
			return nil, statusSerializationFailure
		}
		return b, statusOK
	}
	if path[0] != "filter_metadata" {
		return nil, statusNotFound
	}
	if len(path) == 1 {
		fields := make(map[string]*structpb.Value, len(md.GetFilterMetadata()))
		for name, s := range md.GetFilterMetadata() {
			fields[name] = structpb.NewStructValue(s)
		}
		return serializeValue(structpb.NewStructValue(&structpb.Struct{Fields: fields}))
	}
	s, ok := md.GetFilterMetadata()[path[1]]
	if !ok {
		return nil, statusNotFound
	}
	v := structpb.NewStructValue(s)
	for _, seg := range path[2:] {
		switch k := v.GetKind().(type) {
		case *structpb.Value_StructValue:
			if v, ok = k.StructValue.GetFields()[seg]; !ok {
				return nil, statusNotFound
			}
		case *structpb.Value_ListValue:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(k.ListValue.GetValues()) {
				return nil, statusNotFound
			}
			v = k.ListValue.GetValues()[i]
		default:
			return nil, statusNotFound
		}
	}
	return serializeValue(v)
}

func serializeValue(v *structpb.Value) ([]byte, uint32) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return []byte(k.StringValue), statusOK
	case *structpb.Value_NumberValue:
		return binary.LittleEndian.AppendUint64(nil, math.Float64bits(k.NumberValue)), statusOK
	case *structpb.Value_BoolValue:
		if k.BoolValue {
			return []byte{1}, statusOK
		}
		return []byte{0}, statusOK
	case *structpb.Value_StructValue:
		var pairs [][2]string
		for name, f := range k.StructValue.GetFields() {
			b, st := serializeValue(f)
			if st != statusOK {
				return nil, st
			}
			pairs = append(pairs, [2]string{name, string(b)})
		}
		return abi.EncodeMap(pairs), statusOK
	case *structpb.Value_ListValue:
		var pairs [][2]string
		for _, f := range k.ListValue.GetValues() {
			b, st := serializeValue(f)
			if st != statusOK {
				return nil, st
			}
			pairs = append(pairs, [2]string{string(b), ""})
		}
		return abi.EncodeMap(pairs), statusOK
	}
	return nil, statusSerializationFailure // null, or no kind
}
