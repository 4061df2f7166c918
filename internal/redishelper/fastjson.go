package redishelper

import (
	"strconv"
	"unicode/utf8"
)

// The plugin's requests and their answers have one shape: a command of plain strings in, and an
// integer, a plain string or an array of integers out. These fast paths read and write exactly
// that shape without reflection, and give up (ok false) on anything else, which then goes
// through encoding/json as before: they never decide what a body means, only how quickly.

// decodeCommand reads a JSON array of strings without escapes, such as
// ["EVALSHA","79cd…","1","{fg:p:1a2b}","1","0.5",""], into args (substrings of one copy of
// body).
func decodeCommand(b []byte) (args []any, ok bool) {
	if !utf8.Valid(b) {
		return nil, false
	}
	body := string(b)
	i := skipSpace(body, 0)
	if i == len(body) || body[i] != '[' {
		return nil, false
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == ']' {
		return []any{}, skipSpace(body, i+1) == len(body)
	}
	args = make([]any, 0, 16)
	for {
		if i == len(body) || body[i] != '"' {
			return nil, false
		}
		start := i + 1
		i = start
		for i < len(body) && body[i] != '"' {
			if c := body[i]; c == '\\' || c < 0x20 {
				return nil, false
			}
			i++
		}
		if i == len(body) {
			return nil, false
		}
		args = append(args, body[start:i])
		i = skipSpace(body, i+1)
		if i == len(body) {
			return nil, false
		}
		switch body[i] {
		case ',':
			i = skipSpace(body, i+1)
		case ']':
			return args, skipSpace(body, i+1) == len(body)
		default:
			return nil, false
		}
	}
}

func skipSpace(b string, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// appendJSON appends r as encoding/json would write it, followed by a newline as
// json.Encoder writes, for an error, nil, an integer, a string of printable ASCII without
// quotes or backslashes, or an array of integers.
func (r reply) appendJSON(dst []byte) ([]byte, bool) {
	if r.Error != "" {
		if !plain(r.Error) {
			return dst, false
		}
		return append(append(append(dst, `{"error":"`...), r.Error...), "\"}\n"...), true
	}
	dst = append(dst, `{"result":`...)
	switch v := r.Result.(type) {
	case nil:
		dst = append(dst, "null"...)
	case int64:
		dst = strconv.AppendInt(dst, v, 10)
	case string:
		if !plain(v) {
			return dst, false
		}
		dst = append(append(append(dst, '"'), v...), '"')
	case []any:
		dst = append(dst, '[')
		for i, e := range v {
			n, ok := e.(int64)
			if !ok {
				return dst, false
			}
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendInt(dst, n, 10)
		}
		dst = append(dst, ']')
	default:
		return dst, false
	}
	return append(dst, "}\n"...), true
}

// plain tells whether s is printable ASCII that encoding/json writes as is (it escapes <, > and
// & for HTML).
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
