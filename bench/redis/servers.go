package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	pb_struct "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	pb "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// The two services run as their own built binaries, as they are deployed, each in its own process.
const (
	helperPkg    = "github.com/floodgate-proxy/floodgate/cmd/redis-helper"
	rateLimitPkg = "github.com/envoyproxy/ratelimit/src/service_cmd"
)

// buildServices builds floodgate's helper and envoyproxy/ratelimit's service into dir.
func buildServices(ctx context.Context, dir string) (helper, rateLimit string, err error) {
	helper, rateLimit = filepath.Join(dir, "redis-helper"), filepath.Join(dir, "ratelimit")
	for bin, pkg := range map[string]string{helper: helperPkg, rateLimit: rateLimitPkg} {
		out, err := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			return "", "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
	}
	return helper, rateLimit, nil
}

// service is a running server process.
type service struct {
	cmd  *exec.Cmd
	addr string
	log  string
}

// stop ends the process (SIGTERM, then SIGKILL after 5 s).
func (s *service) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// freePort returns a loopback port nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startProcess(bin, logFile string, env []string, args ...string) (*exec.Cmd, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	return cmd, nil
}

// waitReady polls ready until it succeeds, for at most 30 s.
func waitReady(s *service, ready func() error) error {
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err = ready(); err == nil {
			return nil
		}
	}
	s.stop()
	log, _ := os.ReadFile(s.log)
	return fmt.Errorf("%s not ready: %v\n%s", filepath.Base(s.cmd.Path), err, log)
}

// startHelper runs floodgate's helper (cmd/redis-helper) on a free loopback port, in front of
// redisAddr, with its defaults but the token.
func startHelper(bin, dir, redisAddr, token string) (*service, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	s := &service{addr: addr, log: filepath.Join(dir, "redis-helper.log")}
	if s.cmd, err = startProcess(bin, s.log, []string{"FLOODGATE_HELPER_TOKEN=" + token}, "-listen", addr, "-redis", redisAddr); err != nil {
		return nil, err
	}
	return s, waitReady(s, func() error {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz answered %s", resp.Status)
		}
		return nil
	})
}

// rateLimitDomain is the domain of envoyproxy/ratelimit's configuration for window w: one
// descriptor, remote_address (what Envoy's remote_address action sends), 100 per unit.
func rateLimitDomain(w window) string { return "bench-" + strings.ReplaceAll(w.name, " ", "") }

func rateLimitUnit(w window) string {
	switch w.seconds {
	case 1:
		return "second"
	case 60:
		return "minute"
	case 3600:
		return "hour"
	}
	panic("no ratelimit unit for " + w.name)
}

// startRateLimit runs envoyproxy/ratelimit's service with a configuration of one domain per
// window, its Redis backend on redisAddr over TCP, gRPC on a free loopback port. Settings are the
// service's defaults (README, "Configuration") except: addresses, Prometheus instead of statsd
// (like the helper's /metrics), and the configuration directory read without a symlink swap.
func startRateLimit(bin, dir, redisAddr string) (*service, error) {
	confDir := filepath.Join(dir, "runtime", "ratelimit", "config")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return nil, err
	}
	for _, w := range windows {
		yaml := fmt.Sprintf("domain: %s\ndescriptors:\n  - key: remote_address\n    rate_limit:\n      unit: %s\n      requests_per_unit: %d\n",
			rateLimitDomain(w), rateLimitUnit(w), limitPerWindow)
		if err := os.WriteFile(filepath.Join(confDir, rateLimitDomain(w)+".yaml"), []byte(yaml), 0o644); err != nil {
			return nil, err
		}
	}
	var ports [4]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	env := []string{
		"HOST=127.0.0.1", "PORT=" + strconv.Itoa(ports[0]),
		"GRPC_HOST=127.0.0.1", "GRPC_PORT=" + strconv.Itoa(ports[1]),
		"DEBUG_HOST=127.0.0.1", "DEBUG_PORT=" + strconv.Itoa(ports[2]),
		"USE_STATSD=false", "USE_PROMETHEUS=true", "PROMETHEUS_ADDR=127.0.0.1:" + strconv.Itoa(ports[3]),
		"LOG_LEVEL=warn",
		"REDIS_SOCKET_TYPE=tcp", "REDIS_URL=" + redisAddr,
		"RUNTIME_ROOT=" + filepath.Join(dir, "runtime"), "RUNTIME_SUBDIRECTORY=ratelimit", "RUNTIME_APPDIRECTORY=config",
		"RUNTIME_WATCH_ROOT=false",
	}
	s := &service{addr: "127.0.0.1:" + strconv.Itoa(ports[1]), log: filepath.Join(dir, "ratelimit.log")}
	var err error
	if s.cmd, err = startProcess(bin, s.log, env); err != nil {
		return nil, err
	}
	return s, waitReady(s, func() error {
		conn, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		resp, err := pb.NewRateLimitServiceClient(conn).ShouldRateLimit(ctx, rateLimitRequest(windows[0], "127.0.0.1"))
		if err != nil {
			return err
		}
		if resp.OverallCode != pb.RateLimitResponse_OK || len(resp.Statuses) != 1 || resp.Statuses[0].CurrentLimit == nil {
			return errors.New("the configuration is not loaded yet")
		}
		return nil
	})
}

// rateLimitRequest is what Envoy's rate limit filter sends for a request from ip with a
// remote_address action.
func rateLimitRequest(w window, ip string) *pb.RateLimitRequest {
	return &pb.RateLimitRequest{Domain: rateLimitDomain(w), Descriptors: []*pb_struct.RateLimitDescriptor{
		{Entries: []*pb_struct.RateLimitDescriptor_Entry{{Key: "remote_address", Value: ip}}},
	}}
}
