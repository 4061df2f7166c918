// Command stack runs on loopback everything one of floodgate's modes needs, from a committed Envoy
// bootstrap, and stops all of it on Ctrl-C. `make run-redis` and `make run-hybrid` run it:
//
//	stack -config deploy/local/envoy-redis.yaml -wasm plugin.wasm -bin build/local
//
// When the bootstrap's plugin configuration has a redis section, it starts a redis-server (no
// persistence, its own port) with the floodgate ACL user README's Security section gives, and the
// redis-helper in front of it on the address of the cluster redis.cluster names, with a bearer
// token generated for this run into a temporary directory. Then it starts the gateways
// (e2e/cmd/gateway, two by default) from the same bootstrap, each with its own listener and admin
// address: they share the one Redis and therefore one limit. The token reaches them the way Envoy
// passes it: in the gateway's environment, which vm_config.environment_variables.host_env_keys
// copies into the plugin's. The first gateway starts the echo upstream.
//
// It prints what runs where and the curl lines to try. Every child runs in its own process group,
// so Ctrl-C (SIGINT, or SIGTERM) reaches the stack alone, which stops the gateways, then the
// helper, then Redis, waits for each, and removes its temporary directory; on Linux a child is
// also sent SIGTERM if the stack dies without stopping it. A child that exits on its own stops
// the rest, and the stack exits with status 1.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/floodgate-proxy/floodgate/config"
	"github.com/floodgate-proxy/floodgate/internal/bootstrap"
	"github.com/floodgate-proxy/floodgate/internal/redishelper"
	"github.com/redis/go-redis/v9"
)

// startTimeout bounds how long a child may take to get ready (a gateway compiles plugin.wasm for
// each worker VM first, which takes seconds on a busy machine); stopTimeout how long it may take to
// stop after SIGTERM before it is killed.
const (
	startTimeout = 3 * time.Minute
	stopTimeout  = 10 * time.Second
)

func main() {
	os.Exit(run())
}

// options are the command line.
type options struct {
	config, wasm, bin, redisAddr string
	listen, admin                []string
	vms                          int
}

func run() int {
	var o options
	var listen, admin string
	flag.StringVar(&o.config, "config", "deploy/local/envoy-redis.yaml", "Envoy bootstrap the gateways serve")
	flag.StringVar(&o.wasm, "wasm", "plugin.wasm", "the plugin module")
	flag.StringVar(&o.bin, "bin", "build/local", "directory holding the gateway and redis-helper binaries")
	flag.StringVar(&listen, "listen", "", "the gateways' addresses, comma-separated (default: the bootstrap's listener, and its port + 1)")
	flag.StringVar(&admin, "admin", "", "the gateways' admin addresses, in the same order (default: the bootstrap's admin address, and its port + 1)")
	flag.StringVar(&o.redisAddr, "redis", "127.0.0.1:6380", "address of the redis-server to start (not 6379: a system Redis often runs there)")
	flag.IntVar(&o.vms, "vms", 2, "worker VMs per gateway")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "stack: unexpected arguments %q\n", flag.Args())
		return 2
	}
	o.listen, o.admin = split(listen), split(admin)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := &stack{out: os.Stdout, bin: o.bin, exited: make(chan *child, 8)}
	err := s.run(ctx, o)
	s.stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "stack: %v\n", err)
		return 1
	}
	fmt.Fprintln(s.out, "stack: everything stopped")
	return 0
}

func split(list string) []string {
	if list == "" {
		return nil
	}
	return strings.Split(list, ",")
}

// stack is what one run started: its children in start order and its temporary directory.
type stack struct {
	out      io.Writer
	bin      string     // where the gateway and redis-helper binaries are
	mu       sync.Mutex // serialises the children's output lines
	children []*child
	exited   chan *child
	dir      string
}

// child is one process the stack started.
type child struct {
	name string
	cmd  *exec.Cmd
	out  *prefixWriter
	done chan struct{} // closed once it has exited and been waited for
	err  error         // its exit, once done is closed
}

func (s *stack) run(ctx context.Context, o options) error {
	b, err := bootstrap.Load(o.config)
	if err != nil {
		return err
	}
	cfg, err := config.Parse([]byte(b.Filter.Configuration))
	if err != nil {
		return fmt.Errorf("%s: the plugin configuration: %w", o.config, err)
	}
	gateways, err := addresses(o.listen, b.Listener, "-listen")
	if err != nil {
		return err
	}
	admins, err := addresses(o.admin, adminAddress(b), "-admin")
	if err != nil {
		return err
	}
	if len(admins) != len(gateways) {
		return fmt.Errorf("%d gateways (-listen) but %d admin addresses (-admin)", len(gateways), len(admins))
	}
	for bin, pkg := range map[string]string{"gateway": "./e2e/cmd/gateway", "redis-helper": "./cmd/redis-helper"} {
		if _, err := os.Stat(filepath.Join(o.bin, bin)); err != nil {
			return fmt.Errorf("%w (make run-redis builds it: go build -o %s %s)", err, filepath.Join(o.bin, bin), pkg)
		}
	}
	// A port already taken (make run still running, a system Redis) would make a child fail, or a
	// readiness check pass on someone else's server.
	ports := map[string]string{}
	for i := range gateways {
		ports[gateways[i]], ports[admins[i]] = "-listen", "-admin"
	}
	if cfg.Redis != nil {
		ports[o.redisAddr] = "-redis"
		ports[b.Clusters[cfg.Redis.Cluster]] = "the helper's cluster " + cfg.Redis.Cluster + " in " + o.config
	}
	for addr, from := range ports {
		if addr != "" && accepts(addr) {
			return fmt.Errorf("%s (%s) is already in use: stop what listens there, or choose another address", addr, from)
		}
	}
	if s.dir, err = os.MkdirTemp("", "floodgate-stack-"); err != nil {
		return err
	}

	env := childEnv()
	var lines []string
	if r := cfg.Redis; r != nil {
		helperAddr, ok := b.Clusters[r.Cluster]
		if !ok {
			return fmt.Errorf("%s: redis.cluster %q is not a cluster of the bootstrap", o.config, r.Cluster)
		}
		token, err := s.startRedis(ctx, o.redisAddr, helperAddr, cfg)
		if err != nil {
			return err
		}
		if r.TokenEnv != "" {
			env = append(env, r.TokenEnv+"="+token)
		}
		lines = append(lines,
			row("redis-server", o.redisAddr, s.children[0], "look inside: redis-cli -p "+port(o.redisAddr)+" --scan"),
			row("redis-helper", helperAddr, s.children[1], "token in "+filepath.Join(s.dir, "token")))
	}
	for i, addr := range gateways {
		name := "gateway-" + strconv.Itoa(i+1)
		c, err := s.start(name, env, filepath.Join(s.bin, "gateway"), "-config", o.config, "-wasm", o.wasm, "-listen", addr,
			"-admin", admins[i], "-vms", strconv.Itoa(o.vms), "-echo-upstream="+strconv.FormatBool(i == 0))
		if err != nil {
			return err
		}
		if err := s.waitReady(ctx, c, func() bool { return accepts(addr) }); err != nil {
			return err
		}
		lines = append(lines, row(name, addr, c, "stats: curl -s "+local(admins[i])+"/stats"))
	}
	lines = append(lines, fmt.Sprintf("  %-13s %-16s %s", "upstream", b.Clusters[b.Route], "an echo server, started by gateway-1 unless something listens there"))
	s.intro(o.config, cfg, gateways, admins, lines)

	select {
	case <-ctx.Done():
		return nil
	case c := <-s.exited:
		return fmt.Errorf("%s exited: %v", c.name, c.err)
	}
}

// startRedis starts redis-server with the floodgate ACL user, and the helper in front of it, and
// returns the helper's bearer token: the configuration's literal redis.token, or else a new one.
func (s *stack) startRedis(ctx context.Context, redisAddr, helperAddr string, cfg *config.Config) (string, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return "", fmt.Errorf("redis-server is needed: make run-redis installs it (apt-get install redis-server): %w", err)
	}
	token, password := cfg.Redis.Token, secret()
	if token == "" {
		token = secret()
	}
	for name, value := range map[string]string{"token": token, "redis-password": password} {
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(value+"\n"), 0o600); err != nil {
			return "", err
		}
	}
	host, p, err := net.SplitHostPort(redisAddr)
	if err != nil {
		return "", fmt.Errorf("-redis: %w", err)
	}
	rs, err := s.start("redis", nil, "redis-server", "--bind", host, "--port", p, "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--loglevel", "warning")
	if err != nil {
		return "", err
	}
	if err := s.waitReady(ctx, rs, func() bool { return accepts(redisAddr) }); err != nil {
		return "", err
	}
	// The helper connects as a user that may only run floodgate's scripts on floodgate's keys.
	admin := redis.NewClient(&redis.Options{Addr: redisAddr, Protocol: 2, DisableIdentity: true})
	defer admin.Close()
	args := []any{"ACL", "SETUSER", "floodgate"}
	for _, r := range redishelper.ACLRules(password, cfg.SharedData.Prefix) {
		args = append(args, r)
	}
	if err := admin.Do(ctx, args...).Err(); err != nil {
		return "", fmt.Errorf("redis: ACL SETUSER floodgate: %w", err)
	}
	helper, err := s.start("redis-helper", childEnv(), filepath.Join(s.bin, "redis-helper"),
		"-listen", helperAddr, "-redis", redisAddr, "-redis-user", "floodgate",
		"-redis-password-file", filepath.Join(s.dir, "redis-password"), "-token-file", filepath.Join(s.dir, "token"),
		"-key-prefixes", cfg.SharedData.Prefix)
	if err != nil {
		return "", err
	}
	return token, s.waitReady(ctx, helper, func() bool { return answers("http://" + helperAddr + "/readyz") })
}

// start runs path with args as the child name, its output prefixed with the name, in its own
// process group; env nil keeps the stack's environment.
func (s *stack) start(name string, env []string, path string, args ...string) (*child, error) {
	c := &child{name: name, cmd: exec.Command(path, args...), done: make(chan struct{})}
	c.out = &prefixWriter{prefix: fmt.Sprintf("%-12s | ", name), w: s.out, mu: &s.mu}
	c.cmd.Env, c.cmd.Stdout, c.cmd.Stderr, c.cmd.SysProcAttr = env, c.out, c.out, sysProcAttr()
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c.out.Write([]byte("started: " + strings.Join(c.cmd.Args, " ") + "\n"))
	s.children = append(s.children, c)
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
		select {
		case s.exited <- c:
		default:
		}
	}()
	return c, nil
}

// waitReady polls ready until it holds, c exits, ctx ends or startTimeout passes.
func (s *stack) waitReady(ctx context.Context, c *child, ready func() bool) error {
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !ready() {
		select {
		case <-ctx.Done():
			return errors.New("interrupted while starting " + c.name)
		case <-c.done:
			return fmt.Errorf("%s exited while starting: %v", c.name, c.err)
		case <-deadline.C:
			return fmt.Errorf("%s not ready after %v", c.name, startTimeout)
		case <-tick.C:
		}
	}
	return nil
}

// stop ends the children in the reverse order of their start (gateways, helper, Redis): SIGTERM,
// then SIGKILL after stopTimeout; then it removes the temporary directory.
func (s *stack) stop() {
	for _, c := range slices.Backward(s.children) {
		select {
		case <-c.done:
			continue
		default:
		}
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(stopTimeout):
			c.out.Write([]byte("did not stop: killed\n"))
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		c.out.flush()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// intro prints what runs where and what to try.
func (s *stack) intro(file string, cfg *config.Config, gateways, admins, rows []string) {
	var backends []string
	for _, p := range cfg.Policies {
		if b := string(p.Backend); !slices.Contains(backends, b) {
			backends = append(backends, b)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.out, "\nfloodgate, %s mode, from %s; everything on loopback:\n", strings.Join(backends, "+"), file)
	for _, r := range rows {
		fmt.Fprintln(s.out, r)
	}
	if cfg.Redis != nil && len(gateways) > 1 {
		fmt.Fprintln(s.out, "The gateways share one Redis: a request to either counts against the same limit. Try:")
	} else {
		fmt.Fprintln(s.out, "Try:")
	}
	for _, g := range gateways {
		fmt.Fprintf(s.out, "  for i in $(seq 6); do curl -s -o /dev/null -w '%%{http_code} ' %s/; done; echo\n", local(g))
	}
	fmt.Fprintf(s.out, "  curl -s %s/stats | grep -E '%s[.](allowed|rejected):'\n", local(admins[len(admins)-1]), cfg.Policies[0].Name)
	fmt.Fprintln(s.out, "Ctrl-C stops everything.")
}

// row is one line of the table intro prints.
func row(name, addr string, c *child, note string) string {
	return fmt.Sprintf("  %-13s %-16s pid %-8d %s", name, addr, c.cmd.Process.Pid, note)
}

// addresses is list when given, else def and the same host with the next port.
func addresses(list []string, def, flagName string) ([]string, error) {
	if len(list) > 0 {
		return list, nil
	}
	host, p, err := net.SplitHostPort(def)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	n, _ := strconv.Atoi(p)
	return []string{def, net.JoinHostPort(host, strconv.Itoa(n+1))}, nil
}

// adminAddress is the bootstrap's admin address, the gateway's default when it has none.
func adminAddress(b *bootstrap.Bootstrap) string {
	sa := b.Raw.GetAdmin().GetAddress().GetSocketAddress()
	if sa == nil {
		return "127.0.0.1:9901"
	}
	return net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// local writes a loopback address the way the README's curl lines do.
func local(addr string) string {
	if host, p, err := net.SplitHostPort(addr); err == nil && (host == "127.0.0.1" || host == "localhost") {
		return "localhost:" + p
	}
	return addr
}

func accepts(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

func answers(url string) bool {
	client := http.Client{Timeout: time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// secret is 32 random bytes in hex: what redishelper.CheckToken asks of a token.
func secret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// childEnv is the stack's environment without the helper's secrets: the helper refuses a token
// given both in a file and in its environment.
func childEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "FLOODGATE_HELPER_TOKEN=") || strings.HasPrefix(kv, "REDIS_PASSWORD=")
	})
}

// prefixWriter writes whole lines to w, each after prefix.
type prefixWriter struct {
	prefix string
	w      io.Writer
	mu     *sync.Mutex
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := slices.Index(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
}

// flush writes what is left of a last line without its newline.
func (p *prefixWriter) flush() {
	if len(p.buf) > 0 {
		p.Write([]byte("\n"))
	}
}
