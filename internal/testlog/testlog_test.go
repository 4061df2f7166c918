package testlog

import (
	"bytes"
	"strings"
	"testing"
)

func TestTailKeepsTheLatestBytes(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"under the cap", []string{"a", "b"}, "ab"},
		{"over the cap", []string{strings.Repeat("x", keep), "yz"}, strings.Repeat("x", keep-2) + "yz"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b tail
			for _, w := range tc.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("write: %d %v", n, err)
				}
			}
			if got := b.bytes(); !bytes.Equal(got, []byte(tc.want)) {
				t.Fatalf("kept %d bytes, want %d", len(got), len(tc.want))
			}
		})
	}
}

func TestWriterDropsWritesAfterCleanup(t *testing.T) {
	var w *writer
	t.Run("inner", func(t *testing.T) {
		w = Writer(t).(*writer)
		Logger(t).Info("shown with -v")
	})
	if n, err := w.Write([]byte("late\n")); n != 5 || err != nil { // would panic if logged
		t.Fatalf("late write: %d %v", n, err)
	}
}
