package redislimit

import (
	"context"
	"fmt"
	"os"
	"testing"
)

func TestScratchCost(t *testing.T) {
	dir := os.Getenv("SCRATCH")
	if dir == "" {
		t.Skip()
	}
	ctx := context.Background()
	files, _ := os.ReadDir(dir)
	for rep := 0; rep < 3; rep++ {
		for _, f := range files {
			src, _ := os.ReadFile(dir + "/" + f.Name())
			sha, err := rdb.ScriptLoad(ctx, string(src)).Result()
			if err != nil {
				t.Fatal(err)
			}
			args := []any{"1", "5", "6", "1", "600000", "100", "60000"}
			if f.Name()[0] == 'z' {
				args = []any{100, 100, 60, 1}
			}
			flush(t)
			cpu := cpuSeconds(t)
			const keys, rounds = 1000, 20
			for r := 0; r < rounds; r++ {
				pipe := rdb.Pipeline()
				for k := 0; k < keys; k++ {
					pipe.EvalSha(ctx, sha, []string{fmt.Sprintf("{floodgate:cost-60-3:%016x%016x}", k, k*7919)}, args...)
				}
				if _, err := pipe.Exec(ctx); err != nil {
					t.Fatal(f.Name(), err)
				}
			}
			fmt.Printf("%-20s %.2f µs\n", f.Name(), (cpuSeconds(t)-cpu)*1e6/keys/rounds)
		}
	}
}
