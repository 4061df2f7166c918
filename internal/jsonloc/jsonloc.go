// Package jsonloc names a place in a JSON document by its path ("spec.match[0].mode"), for
// errors that give only a line and column: protojson's, on JSON that sigs.k8s.io/yaml made from
// YAML, whose lines and columns mean nothing to the author of the YAML.
package jsonloc

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// PathAt is the path of the value, or of the object key, at byte offset of doc: the innermost one
// whose text reaches past offset. It is "" for the top level, and the path reached so far when doc
// is not valid JSON there.
func PathAt(doc []byte, offset int) string {
	type frame struct {
		object  bool
		key     string
		index   int
		wantKey bool
	}
	var stack []frame
	path := func() string {
		var b strings.Builder
		for _, f := range stack {
			if f.object {
				if f.wantKey { // between members: the object itself
					break
				}
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(f.key)
			} else {
				b.WriteString("[" + strconv.Itoa(f.index) + "]")
			}
		}
		return b.String()
	}
	// next moves the innermost container past the value that just ended.
	next := func() {
		if n := len(stack); n > 0 {
			if stack[n-1].object {
				stack[n-1].wantKey = true
			} else {
				stack[n-1].index++
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return path()
		}
		past := dec.InputOffset() > int64(offset)
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
			if key, ok := tok.(string); ok {
				stack[n-1].key, stack[n-1].wantKey = key, false
				if past {
					return path()
				}
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if past {
				return path()
			}
			stack = append(stack, frame{object: tok == json.Delim('{'), wantKey: true})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if past {
				return path()
			}
			next()
		default:
			if past {
				return path()
			}
			next()
		}
	}
}

// position is protojson's "(line L:C)", C counted in characters; the "proto:" prefix it
// writes with a space or, on purpose, a no-break space.
var position = regexp.MustCompile(`^proto:[\s\x{a0}]*(?:syntax error[\s\x{a0}]*)?\(line (\d+):(\d+)\):[\s\x{a0}]*`)

// ProtoJSON splits an error protojson returned on doc into the path it points at and the rest of
// its message. An error without a position gives path "" and the whole message, its "proto:"
// prefix removed.
func ProtoJSON(doc []byte, err error) (path, msg string) {
	s := err.Error()
	m := position.FindStringSubmatchIndex(s)
	if m == nil {
		return "", strings.TrimLeft(strings.TrimPrefix(s, "proto:"), " \u00a0")
	}
	line, _ := strconv.Atoi(s[m[2]:m[3]])
	col, _ := strconv.Atoi(s[m[4]:m[5]])
	if strings.Contains(s[:m[1]], "syntax error") {
		msg = "syntax error: "
	}
	return PathAt(doc, offset(doc, line, col)), msg + s[m[1]:]
}

// offset is the byte offset of line and column (both from 1, the column in characters).
func offset(doc []byte, line, col int) int {
	off := 0
	for ; line > 1; line-- {
		i := bytes.IndexByte(doc[off:], '\n')
		if i < 0 {
			return len(doc)
		}
		off += i + 1
	}
	for ; col > 1 && off < len(doc); col-- {
		_, n := utf8.DecodeRune(doc[off:])
		off += n
	}
	return off
}
