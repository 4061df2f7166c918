// Command floodgate is the wasm entry point of the floodgate rate limiter. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm ./cmd/floodgate
//
// The module is a reactor: the host calls _initialize, which runs init below; main never runs.
package main

import (
	"github.com/floodgate-proxy/floodgate/internal/host"
	"github.com/floodgate-proxy/floodgate/plugin"
)

func main() {}

func init() { host.Register(plugin.NewVM(plugin.Options{})) }
