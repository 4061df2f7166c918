package scenarios

import (
	"bytes"
	"flag"
	"os"
	"reflect"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/scenarios.json")

// TestJSONIsCurrent keeps testdata/scenarios.json, what the V8 host replays, equal to All.
func TestJSONIsCurrent(t *testing.T) {
	want, err := JSON()
	if err != nil {
		t.Fatal(err)
	}
	const path = "testdata/scenarios.json"
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run go test ./internal/scenarios -run JSON -update", path)
	}
}

// TestReplayCarriesEveryField fails when Step or Scenario gains a field that JSON does not
// export: the replay (and e2e/v8host/scenarios.mjs) must learn it first.
func TestReplayCarriesEveryField(t *testing.T) {
	tests := []struct {
		typ      any
		exported []string
	}{
		{Step{}, []string{"Source", "Headers", "Repeat", "Upstream", "Status", "Want", "Body"}},
		{Scenario{}, []string{"Name", "Config", "Steps", "Metrics"}},
	}
	for _, tc := range tests {
		var fields []string
		for _, f := range reflect.VisibleFields(reflect.TypeOf(tc.typ)) {
			fields = append(fields, f.Name)
		}
		if !reflect.DeepEqual(fields, tc.exported) {
			t.Errorf("%T has fields %v, JSON exports %v: extend Replay, JSON and e2e/v8host/scenarios.mjs", tc.typ, fields, tc.exported)
		}
	}
}
