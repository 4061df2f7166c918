package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
)

// moduleSize is what a wasm module is made of: section sizes and the code of each function by
// name (from the name section, when the module has one).
type moduleSize struct {
	total, code, data, names int
	initialPages             int            // the memory's initial size: static data and the Go stack
	funcs                    map[string]int // body bytes by function name
}

// readModule parses the sections of a wasm module (the binary format's section headers, the
// code section's function bodies and the function names of the "name" custom section).
func readModule(path string) (moduleSize, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return moduleSize{}, err
	}
	m := moduleSize{total: len(b), funcs: map[string]int{}}
	if len(b) < 8 || !bytes.Equal(b[:4], []byte("\x00asm")) {
		return m, errors.New(path + ": not a wasm module")
	}
	var imported int
	var bodies []int
	names := map[int]string{}
	r := reader{b: b, p: 8}
	for r.p < len(b) {
		id := r.byte()
		size := int(r.uleb())
		start := r.p
		end := start + size
		if r.err != nil || end > len(b) {
			return m, fmt.Errorf("%s: bad section at %d", path, start)
		}
		switch id {
		case 2: // imports: functions imported come first in the function index space
			for n := r.uleb(); n > 0 && r.err == nil; n-- {
				r.name()
				r.name()
				switch r.byte() {
				case 0:
					r.uleb()
					imported++
				case 1: // table: reftype, limits
					r.byte()
					r.limits()
				case 2:
					m.initialPages = r.limits()
				case 3:
					r.byte()
					r.byte()
				}
			}
		case 5: // memory: the module defines its own (Go does)
			if r.uleb() > 0 {
				m.initialPages = r.limits()
			}
		case 10:
			m.code += size
			for n := r.uleb(); n > 0 && r.err == nil; n-- {
				body := int(r.uleb())
				bodies = append(bodies, body)
				r.p += body
			}
		case 11:
			m.data += size
		case 0:
			if r.name() == "name" {
				m.names += size
				for r.p < end && r.err == nil {
					sub, subSize := r.byte(), int(r.uleb())
					subEnd := r.p + subSize
					if sub == 1 {
						for n := r.uleb(); n > 0 && r.err == nil; n-- {
							idx := int(r.uleb())
							names[idx] = r.name()
						}
					}
					r.p = subEnd
				}
			}
		}
		r.p = end
	}
	if r.err != nil {
		return m, fmt.Errorf("%s: %w", path, r.err)
	}
	for i, body := range bodies {
		name, ok := names[imported+i]
		if !ok {
			name = fmt.Sprintf("func[%d]", imported+i)
		}
		m.funcs[name] += body
	}
	return m, nil
}

type reader struct {
	b   []byte
	p   int
	err error
}

func (r *reader) byte() byte {
	if r.p >= len(r.b) {
		r.err = errors.New("truncated")
		return 0
	}
	r.p++
	return r.b[r.p-1]
}

func (r *reader) uleb() uint64 {
	v, n := binary.Uvarint(r.b[min(r.p, len(r.b)):])
	if n <= 0 {
		r.err = errors.New("bad LEB128")
		return 0
	}
	r.p += n
	return v
}

func (r *reader) name() string {
	n := int(r.uleb())
	if r.p+n > len(r.b) {
		r.err = errors.New("truncated name")
		return ""
	}
	r.p += n
	return string(r.b[r.p-n : r.p])
}

// limits reads a limits pair and returns its minimum.
func (r *reader) limits() int {
	hasMax := r.byte() == 1
	minimum := int(r.uleb())
	if hasMax {
		r.uleb()
	}
	return minimum
}

// packagesOf maps the mangled names Go gives wasm functions ("/" and "-" become "_") back to the
// import paths of pkg's dependencies for GOOS=wasip1.
func packagesOf(pkg string) (map[string]string, error) {
	cmd := exec.Command("go", "list", "-deps", pkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -deps %s: %w", pkg, err)
	}
	m := map[string]string{}
	for _, p := range strings.Fields(string(out)) {
		m[strings.NewReplacer("/", "_", "-", "_").Replace(p)] = p
	}
	return m, nil
}

// packageOf returns the import path a mangled function name belongs to: the longest known
// package prefix followed by a dot.
func packageOf(fn string, pkgs map[string]string) string {
	// wasm-opt names the functions it makes after one they came from: "byn$mgfn-shared$<name>".
	if rest, ok := strings.CutPrefix(fn, "byn$"); ok {
		if i := strings.IndexByte(rest, '$'); i >= 0 {
			fn = rest[i+1:]
		}
	}
	best := ""
	for mangled := range pkgs {
		if len(mangled) > len(best) && strings.HasPrefix(fn, mangled+".") {
			best = mangled
		}
	}
	if best == "" {
		if i := strings.IndexByte(fn, '.'); i > 0 {
			return fn[:i]
		}
		return fn
	}
	return pkgs[best]
}

// byPackage sums function sizes by package, largest first.
func byPackage(funcs map[string]float64, pkgs map[string]string) []named {
	sum := map[string]float64{}
	for fn, n := range funcs {
		sum[packageOf(fn, pkgs)] += n
	}
	return sorted(sum)
}

type named struct {
	name  string
	value float64
}

func sorted(m map[string]float64) []named {
	out := make([]named, 0, len(m))
	for k, v := range m {
		out = append(out, named{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].value != out[j].value {
			return out[i].value > out[j].value
		}
		return out[i].name < out[j].name
	})
	return out
}
