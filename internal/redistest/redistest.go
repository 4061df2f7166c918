// Package redistest starts a real redis-server for tests, on a free loopback port, with no
// persistence. `make test` installs redis-server when it is missing.
package redistest

import (
	"fmt"
	"net"
	"os/exec"
	"time"
)

// Server is a running redis-server.
type Server struct {
	Addr string
	cmd  *exec.Cmd
}

// Start runs redis-server on a free port of 127.0.0.1 and waits until it accepts connections.
func Start() (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no")
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
