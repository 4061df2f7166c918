package redishelper

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// slowCommand is what the handler does without the fast path: encoding/json, numbers and
// booleans turned into strings.
func slowCommand(body []byte) ([]any, bool) {
	var cmd []any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if dec.Decode(&cmd) != nil {
		return nil, false
	}
	for i, a := range cmd {
		switch v := a.(type) {
		case json.Number:
			cmd[i] = v.String()
		case bool, string:
		default:
			return nil, false
		}
	}
	return cmd, true
}

var commandBodies = []string{
	`["EVALSHA","79cdfa9592ab19a903486ef70737ce36d56396b3","1","{floodgate:p:47802403cabeea52}","1","0.5522784785828498","","1","2632644023","1","100","1000","100","100","100","10"]`,
	`["PING"]`, ` [ "GET" , "k" ] `, `[]`, "[\"a\",\n\"b\"]",
	`["a\"b"]`, `["\u00e9"]`, `["é"]`, "[\"\xff\"]", `["a",1]`, `["a"] x`, `["a",]`, `[`, `["a"`, `{"a":1}`, `["a\tb"]`, `"a"`, ``,
}

func TestDecodeCommandReadsWhatEncodingJSONReads(t *testing.T) {
	for _, body := range commandBodies {
		checkDecode(t, []byte(body))
	}
	if _, ok := decodeCommand([]byte(commandBodies[0])); !ok {
		t.Error("the plugin's command does not take the fast path")
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, body := range commandBodies {
		f.Add([]byte(body))
	}
	f.Fuzz(checkDecode)
}

// checkDecode: whenever the fast path reads a body, encoding/json reads the same arguments.
func checkDecode(t *testing.T, body []byte) {
	fast, ok := decodeCommand(body)
	if !ok {
		return
	}
	slow, slowOK := slowCommand(body)
	if !slowOK || !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%q: fast path read %q, encoding/json %q (ok %v)", body, fast, slow, slowOK)
	}
}

func TestAppendJSONWritesWhatEncodingJSONWrites(t *testing.T) {
	for _, tc := range []struct {
		r    reply
		fast bool
	}{
		{reply{Result: []any{int64(1), int64(100), int64(-3)}}, true}, {reply{Result: []any{}}, true}, {reply{Result: int64(7)}, true},
		{reply{Result: nil}, true}, {reply{Result: "PONG"}, true}, {reply{Result: "79cdfa9592ab19a903486ef70737ce36d56396b3"}, true},
		{reply{Error: "NOSCRIPT No matching script. Please use EVAL."}, true},
		{reply{Error: "ERR <html> & \"quotes\""}, false}, {reply{Result: "é"}, false}, {reply{Result: []any{int64(1), "a"}}, false},
		{reply{Result: []any{[]any{int64(1)}}}, false}, {reply{Result: 1.5}, false},
	} {
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(tc.r); err != nil {
			t.Fatal(err)
		}
		got, ok := tc.r.appendJSON(nil)
		if ok != tc.fast || ok && string(got) != want.String() {
			t.Errorf("%#v: fast path wrote %q (%v), encoding/json %q", tc.r, got, ok, want.String())
		}
	}
}
