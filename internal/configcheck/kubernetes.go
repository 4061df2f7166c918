package configcheck

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/floodgate-proxy/floodgate/internal/jsonloc"
	"github.com/golang/protobuf/jsonpb" //nolint:staticcheck // what Istio renders pluginConfig with
	protov1 "github.com/golang/protobuf/proto"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	extensionsv1alpha1 "istio.io/api/extensions/v1alpha1"
	typev1beta1 "istio.io/api/type/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// document is one YAML document of a file, numbered from 1 among those that are not empty.
type document struct {
	index int
	line  int // of the file, where the document starts
	data  []byte
}

// yamlLine is the line number in a YAML parser's message.
var yamlLine = regexp.MustCompile(`\bline (\d+)\b`)

// yamlError is a YAML parser's error on the document, its line numbered in the file.
func (d document) yamlError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	if m := yamlLine.FindStringSubmatchIndex(msg); m != nil {
		n, _ := strconv.Atoi(msg[m[2]:m[3]])
		msg = msg[:m[2]] + strconv.Itoa(n+d.line-1) + msg[m[3]:]
	}
	return msg
}

// documents splits a file into its YAML documents as kubectl does (k8s.io/apimachinery's
// YAMLReader: "---" lines), leaving out empty ones.
func documents(data []byte) ([]document, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs []document
	rest, line := data, 1 // what follows the documents read so far
	for {
		d, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, err
		}
		start := line
		if i := bytes.Index(rest, d); i >= 0 { // the reader returns each document's lines as they are
			start += bytes.Count(rest[:i], []byte("\n"))
			line = start + bytes.Count(d, []byte("\n"))
			rest = rest[i+len(d):]
		}
		if js, err := yaml.YAMLToJSON(d); err == nil && string(js) == "null" {
			continue // only comments, or nothing
		}
		docs = append(docs, document{index: len(docs) + 1, line: start, data: d})
	}
}

// yamlObject decodes a YAML document into a map of its top-level fields.
func yamlObject(doc []byte, top *map[string]json.RawMessage) error {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	return json.Unmarshal(js, top)
}

// wasmPluginObject is the envelope of an Istio WasmPlugin, read strictly.
type wasmPluginObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       json.RawMessage   `json:"spec"`
	Status     json.RawMessage   `json:"status,omitempty"`
}

// manifests checks every WasmPlugin of a stream of Kubernetes objects.
func (c *checker) manifests(data []byte) {
	docs, err := documents(data)
	if err != nil {
		c.add(Error, at{document: len(docs) + 1}, "", "%v", err)
	}
	for _, d := range docs {
		js, err := yaml.YAMLToJSON(d.data)
		if err != nil {
			c.add(Error, at{document: d.index}, "", "%s", d.yamlError(err))
			continue
		}
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name, Namespace string
			} `json:"metadata"`
		}
		if err := json.Unmarshal(js, &head); err != nil {
			c.add(Error, at{document: d.index}, "", "not a Kubernetes object: %v", err)
			continue
		}
		if head.Kind == "" {
			c.r.Skipped = append(c.r.Skipped, fmt.Sprintf("document %d (no kind: not a Kubernetes object)", d.index))
		}
		if head.Kind != "WasmPlugin" {
			continue
		}
		name := head.Metadata.Name
		if head.Metadata.Namespace != "" {
			name = head.Metadata.Namespace + "/" + name
		}
		c.wasmPlugin(js, at{document: d.index, object: "WasmPlugin " + name})
	}
}

// wasmPlugin checks one WasmPlugin: decoded against istio.io/api, unknown fields refused, its
// pluginConfig rendered as Istio renders it and checked when the plugin is floodgate's.
func (c *checker) wasmPlugin(js []byte, where at) {
	var o wasmPluginObject
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		c.add(Error, where, "", "%v", err)
		return
	}
	if o.APIVersion != "extensions.istio.io/v1alpha1" {
		c.add(Error, where, "apiVersion", "%q: a WasmPlugin is extensions.istio.io/v1alpha1", o.APIVersion)
	}
	spec := &extensionsv1alpha1.WasmPlugin{}
	if err := protojson.Unmarshal(o.Spec, spec); err != nil {
		path, msg := jsonloc.ProtoJSON(o.Spec, err)
		c.add(Error, where, join("spec", path), "%s", msg)
		return
	}
	c.fieldNames(o.Spec, spec.ProtoReflect().Descriptor(), "spec", where)
	if !c.floodgates(spec.GetUrl(), o.Metadata.Name, spec.GetPluginName()) {
		c.r.Skipped = append(c.r.Skipped, fmt.Sprintf("document %d, %s (not floodgate's)", where.document, where.object))
		return
	}
	c.r.Checked = append(c.r.Checked, fmt.Sprintf("document %d, %s", where.document, where.object))

	// Istio sends pluginConfig as compact JSON (pilot/pkg/model/extensions.go, protomarshal.ToJSON),
	// or nothing when it is empty.
	var pc []byte
	if len(spec.GetPluginConfig().GetFields()) > 0 {
		var err error
		if pc, err = compactJSON(spec.GetPluginConfig()); err != nil {
			c.add(Error, where, "spec.pluginConfig", "%v", err)
			return
		}
	}
	env := &vmEnv{where: "spec.vmConfig.env"}
	for _, e := range spec.GetVmConfig().GetEnv() {
		env.names = append(env.names, e.GetName())
	}
	cfg := c.plugin(pc, at{document: where.document, object: where.object, path: "spec.pluginConfig"}, env, nil)

	// What Istio accepts but makes useless.
	gateway := false
	for k, v := range spec.GetSelector().GetMatchLabels() {
		gateway = gateway || strings.Contains(strings.ToLower(k+"="+v), "gateway")
	}
	for _, ref := range append(spec.GetTargetRefs(), spec.GetTargetRef()) {
		gateway = gateway || ref.GetKind() == "Gateway"
	}
	for i, m := range spec.GetMatch() {
		if gateway && m.GetMode() == typev1beta1.WorkloadMode_SERVER {
			c.add(Warning, where, fmt.Sprintf("spec.match[%d].mode", i), "SERVER, and the selector looks like a gateway's: Istio counts "+
				"a gateway's listeners as CLIENT traffic, so the plugin is attached to none of them (use CLIENT or CLIENT_AND_SERVER)")
		}
	}
	if cfg == nil || cfg.Redis == nil {
		return
	}
	for i, e := range spec.GetVmConfig().GetEnv() {
		if e.GetName() == cfg.Redis.TokenEnv && e.GetValueFrom() == extensionsv1alpha1.EnvValueSource_INLINE {
			c.add(Warning, where, fmt.Sprintf("spec.vmConfig.env[%d]", i), "the helper's token is written in the WasmPlugin: "+
				"use valueFrom: HOST, the proxy's own environment, which a Secret can feed")
		}
	}
	if !strings.HasPrefix(cfg.Redis.Cluster, "outbound|") {
		c.add(Warning, where, "spec.pluginConfig.redis.cluster", "%q: in Istio the cluster of a Service is named "+
			"outbound|PORT||HOST (outbound|8379||floodgate-redis-helper.istio-system.svc.cluster.local); another name is a "+
			"cluster only if an EnvoyFilter adds it", cfg.Redis.Cluster)
	}
}

// fieldNames finds the fields written by their proto names (plugin_config): protojson reads them,
// but the CRD's schema knows only the JSON names (pluginConfig), so the API server refuses or
// drops them.
func (c *checker) fieldNames(js []byte, md protoreflect.MessageDescriptor, path string, where at) {
	if strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
		return // Struct, Duration...: their JSON is their own
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(js, &fields) != nil {
		return
	}
	for _, key := range slices.Sorted(maps.Keys(fields)) {
		v := fields[key]
		fd := md.Fields().ByJSONName(key)
		if fd == nil {
			if fd = md.Fields().ByName(protoreflect.Name(key)); fd != nil {
				c.add(Error, at{document: where.document, object: where.object}, join(path, key),
					"the WasmPlugin schema names this field %s: the API server refuses or drops %s", fd.JSONName(), key)
			}
			continue
		}
		p := join(path, fd.JSONName())
		switch {
		case fd.Message() == nil:
		case fd.IsList():
			var items []json.RawMessage
			_ = json.Unmarshal(v, &items)
			for i, item := range items {
				c.fieldNames(item, fd.Message(), fmt.Sprintf("%s[%d]", p, i), where)
			}
		case fd.IsMap():
		default:
			c.fieldNames(v, fd.Message(), p, where)
		}
	}
}

// compactJSON renders m as Istio does (protomarshal.ToJSON: jsonpb, no indent).
func compactJSON(m proto.Message) ([]byte, error) {
	s, err := (&jsonpb.Marshaler{}).MarshalToString(protov1.MessageV1(m))
	return []byte(s), err
}
