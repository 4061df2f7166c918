// Package configcheck checks floodgate configurations before they reach a proxy, with the code
// the plugin runs on them (config.Parse). It reads three kinds of file:
//
//   - a plugin configuration (JSON), as Envoy's PluginConfig.configuration or Istio's pluginConfig
//     gives it to the plugin;
//   - an Envoy bootstrap (YAML or JSON): decoded and validated with go-control-plane through
//     internal/bootstrap (every typed_config resolved and validated, unknown fields refused), then
//     the configuration of every floodgate wasm filter in it;
//   - Kubernetes manifests (YAML documents): every Istio WasmPlugin decoded against istio.io/api,
//     unknown fields refused, and its pluginConfig rendered as Istio renders it (compact JSON).
//
// A wasm filter or WasmPlugin is floodgate's when its root_id, plugin name or name is "floodgate"
// (or one of Options.Names), or its module's file or URL names floodgate. Every problem is a
// Finding with its document and JSON path; cmd/floodgate-check prints them.
package configcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Kind is what a file holds.
type Kind string

// Kinds of file.
const (
	KindPlugin    Kind = "plugin configuration"
	KindBootstrap Kind = "Envoy bootstrap"
	KindManifests Kind = "Kubernetes manifests"
)

// Severity tells an error, which the proxy would refuse or which breaks limiting, from a warning.
type Severity string

// Severities.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Finding is one problem of a file.
type Finding struct {
	Severity Severity
	// Document is the place of the YAML document in a file of several, from 1; 0 otherwise.
	Document int
	// Object names the Kubernetes object ("WasmPlugin istio-system/floodgate"), if any.
	Object string
	// Path is the JSON path of the field in the file's own names ("spec.pluginConfig.policies[0]");
	// a plugin configuration written as a JSON string (a bootstrap's configuration.value) is
	// entered as if it were an object.
	Path string
	Msg  string
}

func (f Finding) String() string {
	var b strings.Builder
	if f.Document > 0 {
		fmt.Fprintf(&b, "document %d", f.Document)
		if f.Object != "" {
			fmt.Fprintf(&b, " (%s)", f.Object)
		}
		b.WriteString(": ")
	}
	if f.Path != "" {
		b.WriteString(f.Path + ": ")
	}
	return b.String() + string(f.Severity) + ": " + f.Msg
}

// Report is what Check found in one file.
type Report struct {
	File string
	Kind Kind
	// Checked names the floodgate configurations checked, by where they are.
	Checked []string
	// Skipped names the wasm filters and WasmPlugins that are not floodgate's, and documents that
	// are no Kubernetes object.
	Skipped  []string
	Findings []Finding
}

// Errors counts the findings of severity Error.
func (r *Report) Errors() int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == Error {
			n++
		}
	}
	return n
}

// Write prints every finding on a line of its own after the file's name, then, when there is no
// error, one line saying what was checked.
func (r *Report) Write(w io.Writer) error {
	for _, f := range r.Findings {
		if _, err := fmt.Fprintf(w, "%s: %s\n", r.File, f); err != nil {
			return err
		}
	}
	if r.Errors() > 0 {
		return nil
	}
	what := fmt.Sprintf("%d floodgate configuration", len(r.Checked))
	if len(r.Checked) != 1 {
		what += "s"
	}
	if len(r.Checked) > 0 && r.Kind != KindPlugin {
		what += " (" + strings.Join(r.Checked, ", ") + ")"
	}
	if len(r.Skipped) > 0 {
		what += "; skipped: " + strings.Join(r.Skipped, ", ")
	}
	_, err := fmt.Fprintf(w, "%s: ok: %s, %s\n", r.File, r.Kind, what)
	return err
}

// Options tune Check.
type Options struct {
	// Names are root_ids, plugin names or WasmPlugin names that are floodgate's, besides
	// "floodgate".
	Names []string
}

// Check checks the contents of one file; file names it in the report.
func Check(file string, data []byte, opts Options) *Report {
	r := &Report{File: file, Kind: kindOf(data)}
	c := checker{r: r, names: append([]string{"floodgate"}, opts.Names...)}
	switch r.Kind {
	case KindPlugin:
		r.Checked = append(r.Checked, "the file")
		c.plugin(data, at{}, nil, nil)
	case KindBootstrap:
		c.bootstrap(data)
	case KindManifests:
		c.manifests(data)
	}
	return r
}

// checker holds what a check needs while it runs.
type checker struct {
	r     *Report
	names []string
}

// at is where a configuration sits in its file.
type at struct {
	document int
	object   string
	path     string
}

func (c *checker) add(sev Severity, where at, field, format string, args ...any) {
	c.r.Findings = append(c.r.Findings, Finding{Severity: sev, Document: where.document, Object: where.object,
		Path: join(where.path, field), Msg: fmt.Sprintf(format, args...)})
}

// floodgates tells whether a plugin of these names, loading module, is floodgate's.
func (c *checker) floodgates(module string, names ...string) bool {
	for _, n := range names {
		if slices.Contains(c.names, n) {
			return true
		}
	}
	return module != "" && strings.Contains(strings.ToLower(path.Base(module)), "floodgate")
}

// kindOf tells a file's kind by its first document: a JSON object with a field of floodgate's
// configuration is one; an object with a field of Envoy's Bootstrap is a bootstrap (which reports
// any unknown field); anything else is taken for Kubernetes objects (which skips those without a
// kind, like a patch). A file that is not valid JSON or YAML is a plugin configuration when it
// starts with "{" (config.Parse locates JSON syntax errors), else a bootstrap (whose reader
// locates YAML ones).
func kindOf(data []byte) Kind {
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))
	var top map[string]json.RawMessage
	if bytes.HasPrefix(trimmed, []byte("{")) {
		if json.Unmarshal(trimmed, &top) != nil {
			return KindPlugin
		}
	} else {
		first, _ := documents(data)
		if len(first) == 0 || yamlObject(first[0].data, &top) != nil {
			return KindBootstrap
		}
	}
	for _, k := range []string{"policies", "shared_data", "redis"} {
		if _, ok := top[k]; ok {
			return KindPlugin
		}
	}
	if _, ok := top["kind"]; !ok {
		fields := (&bootstrapv3.Bootstrap{}).ProtoReflect().Descriptor().Fields()
		for k := range top {
			if fields.ByName(protoreflect.Name(k)) != nil || fields.ByJSONName(k) != nil {
				return KindBootstrap
			}
		}
	}
	return KindManifests
}

func join(path, field string) string {
	switch {
	case path == "":
		return field
	case field == "":
		return path
	}
	return path + "." + field
}
