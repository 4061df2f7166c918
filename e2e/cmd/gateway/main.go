// Command gateway serves an envoy.yaml with the wazero host instead of Envoy: the listener, the
// clusters, the route and the wasm filter's configuration all come from the file, and the real
// plugin.wasm runs on several worker VMs the way Envoy runs it. `make run` uses it.
//
//	go run ./e2e/cmd/gateway -config envoy.yaml -wasm plugin.wasm
//
// It also serves Envoy-style statistics on the admin address (/stats) and, unless told not to,
// starts a small echo upstream on the route's cluster address when nothing listens there.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/floodgate-proxy/floodgate/e2e/envoyhost"
	"github.com/floodgate-proxy/floodgate/internal/bootstrap"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	configPath := flag.String("config", "envoy.yaml", "Envoy bootstrap to serve")
	wasmPath := flag.String("wasm", "", "plugin module (default: the filter's code.local.filename, relative to the bootstrap)")
	vms := flag.Int("vms", 2, "worker VMs (Envoy: --concurrency)")
	echo := flag.Bool("echo-upstream", true, "start an echo upstream on the route's cluster address when nothing listens there")
	admin := flag.String("admin", "127.0.0.1:9901", "address of the /stats endpoint (empty: none)")
	flag.Parse()

	b, err := bootstrap.Load(*configPath)
	if err != nil {
		return err
	}
	if *wasmPath == "" {
		*wasmPath = filepath.Join(filepath.Dir(*configPath), b.Filter.Code)
	}
	wasm, err := os.ReadFile(*wasmPath)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	levels := []string{"trace", "debug", "info", "warn", "error", "critical"}
	h, err := envoyhost.New(ctx, envoyhost.Config{
		Wasm: wasm, VMs: *vms, VMID: b.Filter.VMID, RootID: b.Filter.RootID, PluginName: b.Filter.Name,
		PluginConfig: []byte(b.Filter.Configuration), Clusters: b.Clusters, FailOpen: b.Filter.FailOpen, Env: b.Filter.Env,
		Log: func(l envoyhost.LogLine) {
			if l.Level >= 2 && int(l.Level) < len(levels) {
				log.Printf("[vm %d] %s: %s", l.VM, levels[l.Level], l.Msg)
			}
		},
	})
	if err != nil {
		return err
	}
	defer h.Close(context.Background())

	upstream := b.Clusters[b.Route]
	if *echo {
		if err := startEcho(upstream); err != nil {
			log.Printf("echo upstream not started: %v", err)
		}
	}
	if *admin != "" {
		go serveStats(*admin, h)
	}
	srv := &http.Server{Addr: b.Listener, Handler: &envoyhost.Front{Host: h, Upstream: upstream}, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("floodgate gateway: %s -> %s (%s), %d worker VMs, plugin %s", b.Listener, b.Route, upstream, *vms, *wasmPath)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// startEcho serves a tiny upstream on addr unless something already listens there.
func startEcho(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	log.Printf("echo upstream on %s", addr)
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "upstream saw "+r.Method+" "+r.URL.RequestURI()+"\n")
	}))
	return nil
}

// serveStats answers /stats like Envoy's admin endpoint: wasmcustom.<name>: <value>.
func serveStats(addr string, h *envoyhost.Host) {
	mux := http.NewServeMux()
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		for _, name := range h.MetricNames() {
			v, _ := h.Metric(name)
			fmt.Fprintf(w, "wasmcustom.%s: %d\n", name, v)
		}
	})
	log.Printf("stats on http://%s/stats", addr)
	if err := http.ListenAndServe(addr, mux); err != nil {
		log.Printf("stats: %v", err)
	}
}
