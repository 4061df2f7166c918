package scenarios

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"slices"
)

// The scenarios also run in hosts written in other languages (e2e/v8host, Node.js: the plugin in
// V8). They share the scenarios as test vectors, not code: JSON() spells every request out, so a
// replayer needs no Go logic, and testdata/scenarios.json is kept equal to it by a test.

// Replay is a scenario as another host replays it.
type Replay struct {
	Name   string `json:"name"`
	Config string `json:"config"`
	// Metrics are counters after the last step, by name, sorted.
	Metrics []ReplayMetric `json:"metrics"`
	// Steps are written after the other fields, one per line (see JSON).
	Steps []ReplayStep `json:"-"`
}

// ReplayStep is one request, sent Repeat times, and what every answer must be.
type ReplayStep struct {
	Source string `json:"source"`
	// Headers is the whole request, exactly as Run sends it.
	Headers [][2]string `json:"headers"`
	Repeat  int         `json:"repeat"`
	// Upstream is the upstream's status for a request that reaches it.
	Upstream int `json:"upstream"`
	Status   int `json:"status"`
	// Want lists headers the answer must carry ("" = must be absent), sorted by name.
	Want [][2]string `json:"want"`
	// Body, when not empty, is the exact body of a local answer.
	Body string `json:"body"`
}

// ReplayMetric is a counter and its value.
type ReplayMetric struct {
	Name  string `json:"name"`
	Value int64  `json:"value"`
}

// JSON returns every scenario of All as replays: a JSON array with one scenario per block and one
// step per line, so that a change to a scenario shows as a change to its lines.
func JSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("[\n")
	for i, sc := range All {
		r := Replay{Name: sc.Name, Config: sc.Config, Steps: []ReplayStep{}, Metrics: []ReplayMetric{}}
		for _, st := range sc.Steps {
			rs := ReplayStep{Source: st.Source, Headers: st.request(), Repeat: max(st.Repeat, 1), Upstream: st.upstream(), Status: st.Status, Body: st.Body, Want: [][2]string{}}
			for _, k := range slices.Sorted(maps.Keys(st.Want)) {
				rs.Want = append(rs.Want, [2]string{k, st.Want[k]})
			}
			r.Steps = append(r.Steps, rs)
		}
		for _, k := range slices.Sorted(maps.Keys(sc.Metrics)) {
			r.Metrics = append(r.Metrics, ReplayMetric{Name: k, Value: sc.Metrics[k]})
		}
		head, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		b.Write(head[:len(head)-1]) // the object stays open for its steps
		b.WriteString(`,"steps":[`)
		for j, st := range r.Steps {
			line, err := json.Marshal(st)
			if err != nil {
				return nil, err
			}
			b.WriteString("\n  ")
			b.Write(line)
			if j < len(r.Steps)-1 {
				b.WriteByte(',')
			}
		}
		b.WriteString("]}")
		if i < len(All)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("]\n")
	if !json.Valid(b.Bytes()) {
		return nil, errors.New("scenarios: the export is not valid JSON")
	}
	return b.Bytes(), nil
}
