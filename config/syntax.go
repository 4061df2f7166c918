package config

import (
	"fmt"
	"unicode/utf8"
)

// MaxConfigBytes bounds a configuration: a larger one is refused before it is parsed, so that a
// huge document cannot make a proxy spend seconds and hundreds of megabytes refusing it.
const MaxConfigBytes = 1 << 20

// maxDepth bounds the nesting of a configuration (the schema needs 6 levels).
const maxDepth = 32

// syntaxError is a JSON syntax error at a byte offset.
type syntaxError struct {
	offset int
	msg    string
}

// checkSyntax reports the first JSON syntax error of data, with its line and column (1-based,
// columns in characters), the way editors show them; gjson itself only says valid or not.
func checkSyntax(data []byte) error {
	s := &scanner{data: data}
	s.space()
	if err := s.value(0); err != nil {
		return s.located(err)
	}
	s.space()
	if s.pos < len(data) {
		return s.located(&syntaxError{s.pos, "unexpected " + s.describe() + " after the top-level value"})
	}
	return nil
}

type scanner struct {
	data []byte
	pos  int
}

func (s *scanner) located(e *syntaxError) error {
	line, col := 1, 1
	for i := 0; i < e.offset && i < len(s.data); {
		r, n := utf8.DecodeRune(s.data[i:])
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		i += n
	}
	return fmt.Errorf("not valid JSON: line %d, column %d: %s", line, col, e.msg)
}

// describe names what is at the current position, for an error message.
func (s *scanner) describe() string {
	if s.pos >= len(s.data) {
		return "end of input"
	}
	r, _ := utf8.DecodeRune(s.data[s.pos:])
	if r < ' ' {
		return fmt.Sprintf("character %U", r)
	}
	return fmt.Sprintf("%q", r)
}

func (s *scanner) fail(want string) *syntaxError {
	return &syntaxError{s.pos, "want " + want + ", found " + s.describe()}
}

func (s *scanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) value(depth int) *syntaxError {
	if depth > maxDepth {
		return &syntaxError{s.pos, fmt.Sprintf("nested more than %d levels deep", maxDepth)}
	}
	if s.pos >= len(s.data) {
		return s.fail("a value")
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object(depth)
	case c == '[':
		return s.array(depth)
	case c == '"':
		return s.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if len(s.data)-s.pos >= len(lit) && string(s.data[s.pos:s.pos+len(lit)]) == lit {
				s.pos += len(lit)
				return nil
			}
		}
		return s.fail("a value")
	}
}

func (s *scanner) object(depth int) *syntaxError {
	s.pos++ // {
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	for {
		s.space()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.fail("a field name in double quotes")
		}
		if err := s.str(); err != nil {
			return err
		}
		s.space()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.fail("':' after a field name")
		}
		s.pos++
		s.space()
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.space()
		if s.pos < len(s.data) && s.data[s.pos] == ',' {
			s.pos++
			continue
		}
		if s.pos < len(s.data) && s.data[s.pos] == '}' {
			s.pos++
			return nil
		}
		return s.fail("',' or '}'")
	}
}

func (s *scanner) array(depth int) *syntaxError {
	s.pos++ // [
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return nil
	}
	for {
		s.space()
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.space()
		if s.pos < len(s.data) && s.data[s.pos] == ',' {
			s.pos++
			continue
		}
		if s.pos < len(s.data) && s.data[s.pos] == ']' {
			s.pos++
			return nil
		}
		return s.fail("',' or ']'")
	}
}

func (s *scanner) str() *syntaxError {
	start := s.pos
	s.pos++ // "
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return nil
		case c == '\\':
			s.pos++
			if s.pos >= len(s.data) {
				return &syntaxError{start, "unterminated string"}
			}
			switch s.data[s.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos++
			case 'u':
				for i := 1; i <= 4; i++ {
					if s.pos+i >= len(s.data) || !isHex(s.data[s.pos+i]) {
						return &syntaxError{s.pos - 1, `want 4 hexadecimal digits after \u`}
					}
				}
				s.pos += 5
			default:
				return &syntaxError{s.pos - 1, fmt.Sprintf(`invalid escape \%c`, s.data[s.pos])}
			}
		case c < ' ':
			return &syntaxError{s.pos, "control character in a string (write it as an escape)"}
		default:
			if c >= utf8.RuneSelf {
				r, n := utf8.DecodeRune(s.data[s.pos:])
				if r == utf8.RuneError && n == 1 {
					return &syntaxError{s.pos, "invalid UTF-8"}
				}
				s.pos += n
				continue
			}
			s.pos++
		}
	}
	return &syntaxError{start, "unterminated string"}
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func (s *scanner) number() *syntaxError {
	start := s.pos
	digits := func() bool {
		n := s.pos
		for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
			s.pos++
		}
		return s.pos > n
	}
	if s.data[s.pos] == '-' {
		s.pos++
	}
	if s.pos < len(s.data) && s.data[s.pos] == '0' {
		s.pos++
	} else if !digits() {
		return &syntaxError{start, "invalid number"}
	}
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		if !digits() {
			return &syntaxError{start, "invalid number"}
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if !digits() {
			return &syntaxError{start, "invalid number"}
		}
	}
	return nil
}
