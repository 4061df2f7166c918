package config

import (
	"os"
	"regexp"
	"testing"
)

// TestReadmeExamplesParse keeps the README's configuration examples valid.
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
		if _, err := Parse(b[1]); err != nil {
			t.Errorf("README example %d:\n%s\n%v", i, b[1], err)
		}
	}
}
