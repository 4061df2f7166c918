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

// StartCluster runs a one-node Redis Cluster owning every hash slot: enough to prove that
// commands go through go-redis's cluster client and that keys hash-tag to one slot.
func StartCluster(dir string) (*Server, error) {
	s, err := start("--cluster-enabled", "yes", "--cluster-config-file", dir+"/nodes.conf", "--dir", dir)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", s.port(), "CLUSTER", "ADDSLOTSRANGE", "0", "16383").CombinedOutput()
	if err != nil {
		s.Stop()
		return nil, fmt.Errorf("redistest: assigning slots: %v: %s", err, out)
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
	return startCmd("--port", append([]string{"--save", "", "--appendonly", "no"}, extra...)...)
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
