package config

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkSyntax accepts exactly the documents encoding/json accepts (within the nesting bound; it
// also refuses invalid UTF-8, which encoding/json lets through in strings).
func FuzzCheckSyntaxAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,2.5e-3,-0,true,null,"x\u00e9\n"]}`, `[`, `{"a":1,}`, `"\x01"`, `01`, `1.`,
		`{"a" 1}`, `"\ud800"`, "\"\xff\"", `  [ ]  `, `{"policies":[{"name":"a"}]}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Count(s, "[")+strings.Count(s, "{") > maxDepth || !utf8.ValidString(s) {
			return
		}
		got := checkSyntax([]byte(s)) == nil
		if want := json.Valid([]byte(s)); got != want {
			t.Fatalf("checkSyntax(%q) valid %v, encoding/json says %v", s, got, want)
		}
	})
}
