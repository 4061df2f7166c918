package bootstrap

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeShowsEachModesConfiguration keeps the plugin configuration README shows for each run
// target equal (as JSON values) to the one in the bootstrap that target serves.
func TestReadmeShowsEachModesConfiguration(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```json\n(.*?)```")
	for _, tc := range []struct{ heading, file string }{
		{"### Local mode: make run\n", "../../envoy.yaml"},
		{"### Redis mode: make run-redis\n", "../../deploy/local/envoy-redis.yaml"},
		{"### Hybrid mode: make run-hybrid\n", "../../deploy/local/envoy-hybrid.yaml"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			at := strings.Index(string(readme), tc.heading)
			if at < 0 {
				t.Fatalf("README.md has no section %q", strings.TrimSpace(tc.heading))
			}
			section := string(readme[at+len(tc.heading):])
			if next := strings.Index(section, "\n## "); next >= 0 {
				section = section[:next]
			}
			if next := strings.Index(section, "\n### "); next >= 0 {
				section = section[:next]
			}
			m := block.FindStringSubmatch(section)
			if m == nil {
				t.Fatalf("README's %q shows no json configuration", strings.TrimSpace(tc.heading))
			}
			b, err := Load(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			var shown, served any
			if err := json.Unmarshal([]byte(m[1]), &shown); err != nil {
				t.Fatalf("README's configuration: %v", err)
			}
			if err := json.Unmarshal([]byte(b.Filter.Configuration), &served); err != nil {
				t.Fatalf("%s's configuration: %v", tc.file, err)
			}
			if !reflect.DeepEqual(shown, served) {
				t.Errorf("README's %q shows\n%s\nbut %s configures\n%s", strings.TrimSpace(tc.heading), m[1], tc.file, b.Filter.Configuration)
			}
		})
	}
}
