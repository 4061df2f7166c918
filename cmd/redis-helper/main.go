// Command redis-helper is the small stateless HTTP service the floodgate plugin reaches Redis
// through (see internal/redishelper for the protocol). It runs floodgate's own scripts on
// floodgate's keys and nothing else. It supports standalone Redis, Redis Cluster and Sentinel,
// an ACL user, TLS to Redis and on its own listener, request size limits and timeouts,
// /healthz, /readyz, Prometheus /metrics, structured logs and graceful shutdown.
//
// The bearer token comes from a file (-token-file, what a mounted Kubernetes Secret gives) or
// from FLOODGATE_HELPER_TOKEN, never from a flag; a short or placeholder token is refused
// (redishelper.CheckToken). The Redis password likewise: -redis-password-file or REDIS_PASSWORD.
//
//	redis-helper -token-file /run/secrets/token -redis 127.0.0.1:6379 -redis-user floodgate -redis-password-file /run/secrets/redis
//	FLOODGATE_HELPER_TOKEN=$(openssl rand -hex 32) redis-helper -listen 127.0.0.1:8379 -redis 127.0.0.1:6379
//	redis-helper -redis-mode cluster -redis node1:6379,node2:6379
//	redis-helper -redis-mode sentinel -sentinel-master mymaster -redis s1:26379,s2:26379
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/floodgate-proxy/floodgate/internal/redishelper"
	"github.com/redis/go-redis/v9"
)

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(logger); err != nil {
		logger.Error("redis-helper stopped", "error", err)
		os.Exit(1)
	}
}

func run(logger *slog.Logger) error {
	listen := flag.String("listen", "127.0.0.1:8379", "address to serve on")
	addrs := flag.String("redis", "127.0.0.1:6379", "Redis addresses, comma-separated (cluster nodes or sentinels)")
	mode := flag.String("redis-mode", "standalone", "standalone, cluster or sentinel")
	master := flag.String("sentinel-master", "", "the master name (sentinel mode)")
	redisTLS := flag.Bool("redis-tls", false, "connect to Redis with TLS")
	redisCA := flag.String("redis-ca", "", "CA bundle for Redis TLS (default: system roots)")
	certFile := flag.String("tls-cert", "", "serve HTTPS with this certificate")
	keyFile := flag.String("tls-key", "", "and this key")
	tokenFile := flag.String("token-file", "", "file holding the bearer token (default: $FLOODGATE_HELPER_TOKEN)")
	prefixes := flag.String("key-prefixes", redishelper.DefaultKeyPrefix, "the plugins' shared_data.prefix values, comma-separated: script keys must be {prefix:...}")
	redisUser := flag.String("redis-user", os.Getenv("REDIS_USERNAME"), "Redis ACL user (README: ACL SETUSER floodgate ...)")
	redisPasswordFile := flag.String("redis-password-file", "", "file holding the Redis password (default: $REDIS_PASSWORD)")
	maxBody := flag.Int64("max-body", 64<<10, "largest request body, bytes")
	maxPipeline := flag.Int("max-pipeline", 500, "most commands in one /pipeline call")
	timeout := flag.Duration("timeout", time.Second, "Redis time budget of one request")
	inFlight := flag.Int("in-flight", 2, "single commands out to Redis at once; more leave together in one pipeline")
	flag.Parse()

	token, err := secret(*tokenFile, "FLOODGATE_HELPER_TOKEN")
	if err != nil {
		return fmt.Errorf("the token: %w", err)
	}
	if token == "" {
		return errors.New("the token: give -token-file or FLOODGATE_HELPER_TOKEN (openssl rand -hex 32)")
	}
	password, err := secret(*redisPasswordFile, "REDIS_PASSWORD")
	if err != nil {
		return fmt.Errorf("the Redis password: %w", err)
	}
	opts := &redis.UniversalOptions{
		Addrs:    strings.Split(*addrs, ","),
		Username: *redisUser, Password: password,
		Protocol: 2, DialTimeout: 250 * time.Millisecond, ReadTimeout: *timeout, WriteTimeout: *timeout,
		DisableIdentity: true, // the floodgate ACL user may not run CLIENT SETINFO
	}
	switch *mode {
	case "standalone":
		opts.Addrs = opts.Addrs[:1]
	case "cluster":
		opts.IsClusterMode = true
	case "sentinel":
		if *master == "" {
			return errors.New("-sentinel-master is required in sentinel mode")
		}
		opts.MasterName = *master
	default:
		return fmt.Errorf("-redis-mode %q: want standalone, cluster or sentinel", *mode)
	}
	if *redisTLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if *redisCA != "" {
			pem, err := os.ReadFile(*redisCA)
			if err != nil {
				return err
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("%s: no certificate", *redisCA)
			}
		}
		opts.TLSConfig = cfg
	}
	client := redis.NewUniversalClient(opts)
	defer client.Close()

	h, err := redishelper.New(client, redishelper.Options{Token: token, KeyPrefixes: strings.Split(*prefixes, ","),
		MaxBody: *maxBody, MaxPipeline: *maxPipeline, Timeout: *timeout, InFlight: *inFlight, Logger: logger})
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		logger.Info("redis-helper serving", "listen", *listen, "redis", *addrs, "mode", *mode)
		if *certFile != "" {
			errc <- srv.ListenAndServeTLS(*certFile, *keyFile)
		} else {
			errc <- srv.ListenAndServe()
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// secret reads a secret from file (surrounding white space removed, as `echo` and editors leave
// a newline), or else from the environment variable env. Both given is an error: which one
// counts would be a guess.
func secret(file, env string) (string, error) {
	fromEnv := os.Getenv(env)
	if file == "" {
		return fromEnv, nil
	}
	if fromEnv != "" {
		return "", fmt.Errorf("both a file and %s are given: keep one", env)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
