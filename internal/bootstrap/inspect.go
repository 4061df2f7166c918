package bootstrap

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	wasmfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"github.com/floodgate-proxy/floodgate/internal/jsonloc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"
)

// Inspection is what Inspect found in a bootstrap.
type Inspection struct {
	// Raw is the decoded bootstrap; nil when it does not decode.
	Raw *bootstrapv3.Bootstrap
	// Filters are the HTTP wasm filters, wherever they are, in the order of the file.
	Filters []Located
	// Problems are what Envoy would refuse, each at its path.
	Problems []Problem
}

// Located is an HTTP wasm filter's PluginConfig and its path in the bootstrap.
type Located struct {
	Path   string // e.g. static_resources.listeners[0]...http_filters[0].typed_config.config
	Config *wasmv3.PluginConfig
}

// Problem is one thing Envoy would refuse in a bootstrap.
type Problem struct {
	// Path is where, in the field names of the file (proto names: static_resources.clusters[0]);
	// inside a typed_config, the fields of the message it holds follow it, as they do in the file.
	Path, Msg string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Msg
	}
	return p.Path + ": " + p.Msg
}

// Inspect decodes a bootstrap (YAML or JSON) as Envoy would, whatever its shape, and collects
// every problem and every HTTP wasm filter: unknown fields are refused, every typed_config at any
// depth is resolved and validated with the validators go-control-plane generates (Envoy validates
// each extension's configuration when it builds it). Unlike Parse it asks nothing the gateway
// needs. A typed_config resolves only to a type linked into the program: Parse's few, or every
// one of go-control-plane's when the program imports them (internal/configcheck does).
func Inspect(data []byte) Inspection {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return Inspection{Problems: []Problem{{Msg: strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")}}}
	}
	raw := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, raw); err != nil {
		path, msg := jsonloc.ProtoJSON(js, err)
		return Inspection{Problems: []Problem{{Path: path, Msg: msg}}}
	}
	in := Inspection{Raw: raw}
	in.validate(raw, "")
	in.walk(raw.ProtoReflect(), "")
	return in
}

// walk visits every message field of m, in the order of its fields.
func (in *Inspection) walk(m protoreflect.Message, path string) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		p := join(path, string(fd.Name()))
		v := m.Get(fd)
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				continue
			}
			var keys []string
			v.Map().Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k.String())
				return true
			})
			slices.Sort(keys)
			for _, k := range keys {
				in.visit(v.Map().Get(protoreflect.ValueOfString(k).MapKey()).Message(), fmt.Sprintf("%s[%q]", p, k))
			}
		case fd.Message() == nil:
		case fd.IsList():
			for j := range v.List().Len() {
				in.visit(v.List().Get(j).Message(), fmt.Sprintf("%s[%d]", p, j))
			}
		default:
			in.visit(v.Message(), p)
		}
	}
}

// visit walks m; an Any is resolved, validated and walked in its place.
func (in *Inspection) visit(m protoreflect.Message, path string) {
	a, ok := m.Interface().(*anypb.Any)
	if !ok {
		in.walk(m, path)
		return
	}
	inner, err := a.UnmarshalNew()
	if err != nil {
		in.Problems = append(in.Problems, Problem{path, fmt.Sprintf("%s: %v", a.GetTypeUrl(), err)})
		return
	}
	in.validate(inner, path)
	if w, ok := inner.(*wasmfilterv3.Wasm); ok {
		in.Filters = append(in.Filters, Located{Path: join(path, "config"), Config: w.GetConfig()})
	}
	in.walk(inner.ProtoReflect(), path)
}

// validate runs m's generated validator, every violation a Problem at its path.
func (in *Inspection) validate(m proto.Message, path string) {
	if v, ok := m.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			in.violations(err, path)
		}
	}
}

// fieldError is what protoc-gen-validate generates for a violation; multiError for several.
type (
	fieldError interface {
		Field() string
		Reason() string
		Cause() error
	}
	multiError interface{ AllErrors() []error }
)

// violations flattens a validator's error: an embedded message's violations sit under its field.
func (in *Inspection) violations(err error, path string) {
	switch e := err.(type) {
	case multiError:
		for _, each := range e.AllErrors() {
			in.violations(each, path)
		}
	case fieldError:
		p := join(path, goToProtoName(e.Field()))
		switch cause := e.Cause(); cause.(type) {
		case nil:
			in.Problems = append(in.Problems, Problem{p, e.Reason()})
		case multiError, fieldError:
			in.violations(cause, p)
		default:
			in.Problems = append(in.Problems, Problem{p, e.Reason() + ": " + cause.Error()})
		}
	default:
		in.Problems = append(in.Problems, Problem{path, err.Error()})
	}
}

// goToProtoName turns a validator's field ("HttpFilters[0]", "ConnectTimeout") into the name of
// the file ("http_filters[0]", "connect_timeout").
func goToProtoName(field string) string {
	name, index, _ := strings.Cut(field, "[")
	var b strings.Builder
	for i, r := range name {
		if unicode.IsUpper(r) {
			if i > 0 && !unicode.IsUpper(rune(name[i-1])) {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	if index != "" {
		b.WriteString("[" + index)
	}
	return b.String()
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}
