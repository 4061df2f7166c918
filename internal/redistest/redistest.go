// Package redistest starts a real redis-server for tests, on a free loopback port, with no
// persistence. `make test` installs redis-server when it is missing.
package redistest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Server is a running redis-server.
type Server struct {
	Addr string
	cmd  *exec.Cmd
}

// Start runs redis-server on a free port of 127.0.0.1 and waits until it accepts connections.
func Start() (*Server, error) { return start() }

// StartWith runs redis-server like Start with extra configuration arguments after the defaults,
// e.g. "--maxmemory", "8mb", "--maxmemory-policy", "allkeys-lfu"; a later argument overrides an
// earlier one, so a test can run a shipped redis.conf (its path first) with its own port.
func StartWith(args ...string) (*Server, error) { return start(args...) }

// SetUser runs ACL SETUSER name rules... as the default user (the tests' administrator), e.g.
// the floodgate user the helper connects as.
func (s *Server) SetUser(name string, rules ...string) error {
	return s.cli(append([]string{"ACL", "SETUSER", name}, rules...)...)
}

// cli runs one command with redis-cli as the default user; an error reply fails.
func (s *Server) cli(args ...string) error {
	out, err := exec.Command("redis-cli", append([]string{"-h", "127.0.0.1", "-p", s.port()}, args...)...).CombinedOutput()
	if err != nil || strings.HasPrefix(string(out), "ERR") || strings.HasPrefix(string(out), "(error)") {
		return fmt.Errorf("redistest: redis-cli %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// StartCluster runs a one-node Redis Cluster owning every hash slot: enough to prove that
// commands go through go-redis's cluster client and that keys hash-tag to one slot.
func StartCluster(dir string) (*Server, error) {
	s, err := start("--cluster-enabled", "yes", "--cluster-config-file", dir+"/nodes.conf", "--dir", dir)
	if err != nil {
		return nil, err
	}
	if err := s.cli("CLUSTER", "ADDSLOTSRANGE", "0", "16383"); err != nil {
		s.Stop()
		return nil, err
	}
	for i := 0; i < 250; i++ {
		info, _ := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", s.port(), "CLUSTER", "INFO").Output()
		if strings.Contains(string(info), "cluster_state:ok") {
			return s, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Stop()
	return nil, fmt.Errorf("redistest: the cluster did not become ok")
}

func (s *Server) port() string {
	_, p, _ := net.SplitHostPort(s.Addr)
	return p
}

func start(extra ...string) (*Server, error) {
	args := []string{"--save", "", "--appendonly", "no"}
	if len(extra) > 0 && !strings.HasPrefix(extra[0], "--") {
		args = append([]string{extra[0]}, args...) // a configuration file comes first
		extra = extra[1:]
	}
	return startCmd("--port", append(args, extra...)...)
}

// StartTLS runs redis-server accepting only TLS on its port, with certFile/keyFile, not asking
// clients for certificates.
func StartTLS(certFile, keyFile string) (*Server, error) {
	return startCmd("--tls-port", "--save", "", "--port", "0", "--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-ca-cert-file", certFile, "--tls-auth-clients", "no")
}

// startCmd runs redis-server with args on a free port of 127.0.0.1 given with portFlag.
func startCmd(portFlag string, args ...string) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("redis-server", append(args, "--bind", "127.0.0.1", portFlag, port)...)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redistest: redis-server is needed (make test installs it): %w", err)
	}
	for i := 0; i < 250; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return &Server{Addr: addr, cmd: cmd}, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	return nil, fmt.Errorf("redistest: redis-server did not listen on %s", addr)
}

// Stop ends the server.
func (s *Server) Stop() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

// StartSentinel runs a Sentinel on a free port watching master (a Server) as masterName.
func StartSentinel(dir, masterName string, master *Server) (*Server, error) {
	conf := dir + "/sentinel.conf"
	content := "sentinel monitor " + masterName + " 127.0.0.1 " + master.port() + " 1\n" +
		"sentinel down-after-milliseconds " + masterName + " 5000\n"
	if err := os.WriteFile(conf, []byte(content), 0o644); err != nil {
		return nil, err
	}
	return startCmd("--port", conf, "--sentinel")
}
