// Command gateway serves an envoy.yaml with the wazero host instead of Envoy: the listener, the
// clusters, the route and the wasm filter's configuration all come from the file, and the real
// plugin.wasm runs on several worker VMs the way Envoy runs it. `make run` uses it.
//
//	go run ./e2e/cmd/gateway -config envoy.yaml -wasm plugin.wasm
//
// The connection manager's use_remote_address, xff_num_trusted_hops and skip_xff_append decide
// the client address the plugin sees, as in Envoy. It also serves Envoy-style statistics on the
// admin address (/stats, /stats/prometheus) and, unless told not to, starts a small echo upstream
// on the route's cluster address when nothing listens there.
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
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
	admin := flag.String("admin", "127.0.0.1:9901", "address of the admin endpoint: /stats, /stats/prometheus (empty: none)")
	listen := flag.String("listen", "", "address to serve on instead of the bootstrap's listener (a second gateway from the same file)")
	flag.Parse()

	b, err := bootstrap.Load(*configPath)
	if err != nil {
		return err
	}
	if *listen != "" {
		b.Listener = *listen
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
		go serveAdmin(*admin, h)
	}
	front := &envoyhost.Front{Host: h, Upstream: upstream, ConnManager: b.ConnManager, LocalAddress: localAddress()}
	srv := &http.Server{Addr: b.Listener, Handler: front, ReadHeaderTimeout: 10 * time.Second}
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

// serveAdmin answers /stats and /stats/prometheus like Envoy's admin endpoint.
func serveAdmin(addr string, h *envoyhost.Host) {
	log.Printf("stats on http://%s/stats and http://%s/stats/prometheus", addr, addr)
	if err := http.ListenAndServe(addr, h.AdminHandler()); err != nil {
		log.Printf("admin: %v", err)
	}
}

// localAddress is the address Envoy's local_info reports, which it appends to X-Forwarded-For for
// a loopback peer: the first non-loopback IPv4 address of the machine, else 127.0.0.1
// (source/common/network/utility.cc, getLocalAddress).
func localAddress() netip.Addr {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() {
			return p.Addr()
		}
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1})
}
