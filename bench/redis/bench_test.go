package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestHarnessRunsEveryApproachAndPath runs the whole benchmark with tiny counts: redis-server,
// both services built and started, every cost cell and latency run, and the report's tables.
func TestHarnessRunsEveryApproachAndPath(t *testing.T) {
	if testing.Short() {
		t.Skip("builds envoyproxy/ratelimit and floodgate's helper")
	}
	o := options{
		cost:    costOptions{clients: 6, rounds: 1, workers: 2, sampled: 2, cellTime: time.Minute},
		latency: latencyOptions{rounds: 1, concurrency: []int{1, 2}, decisions: 20, runTime: time.Minute},
		command: "go test",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	report, err := run(ctx, o, func(msg string) { t.Log(msg) })
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range allApproaches() {
		if strings.Count(report, "| "+a.name+" |") != 3 {
			t.Errorf("the report lacks the rows of %s:\n%s", a.name, report)
		}
	}
	for _, want := range []string{"| 1 s | 1 |", "| 1 h | 2 |", "| floodgate absolute | 100% of 600 |", "floodgate absolute: CPU per decision at most 2x"} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "NaN") || strings.Contains(report, "Inf") {
		t.Errorf("the report has undefined figures:\n%s", report)
	}
}
