package config

import (
	"os"
	"regexp"
	"testing"

	"github.com/tidwall/gjson"
)

// TestReadmeExamplesParse keeps the README's configuration examples valid: whole configurations,
// and single policies (an object with a "name"), checked as the only policy of one.
func TestReadmeExamplesParse(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatal("no json example in README.md")
	}
	for i, b := range blocks {
		cfg := b[1]
		if gjson.GetBytes(cfg, "name").Exists() {
			cfg = []byte(`{"policies":[` + string(cfg) + `]}`)
		}
		if _, err := Parse(cfg); err != nil {
			t.Errorf("README example %d:\n%s\n%v", i, b[1], err)
		}
	}
}
