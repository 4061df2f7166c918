package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/floodgate-proxy/floodgate/internal/redishelper"
	"github.com/floodgate-proxy/floodgate/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// The hybrid case's helper: the token the plugin's configuration names, and the password of the
// floodgate ACL user the helper connects as (README's Redis set-up).
const (
	helperToken    = "7c1f9e3a5b0d2846e8a4c6f0b3d5e7a9"
	helperPassword = "5d7f9b1c3e0a2468ace13579bdf02468"
	helperCluster  = "floodgate-redis-helper"
)

// startHelper runs redis-server on a free loopback port (internal/redistest) and the Redis helper
// in front of it in this process, on loopback; it returns the helper's address and how to stop
// both.
func startHelper() (addr string, stop func(), err error) {
	srv, err := redistest.Start()
	if err != nil {
		return "", nil, fmt.Errorf("redis-server: %w", err)
	}
	if err := srv.SetUser("floodgate", redishelper.ACLRules(helperPassword, "floodgate")...); err != nil {
		srv.Stop()
		return "", nil, fmt.Errorf("redis ACL: %w", err)
	}
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{srv.Addr}, Username: "floodgate", Password: helperPassword,
		Protocol: 2, DialTimeout: time.Second, ReadTimeout: 2 * time.Second})
	h, err := redishelper.New(client, redishelper.Options{Token: helperToken, Timeout: 2 * time.Second})
	if err == nil {
		var ln net.Listener
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err == nil {
			hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
			go hs.Serve(ln)
			return ln.Addr().String(), func() { hs.Close(); client.Close(); srv.Stop() }, nil
		}
	}
	client.Close()
	srv.Stop()
	return "", nil, errors.Join(errors.New("redis helper"), err)
}

// hybridConfig is a hybrid policy of one limit on the client's address, synced every 100 ms.
func hybridConfig(limits string) string {
	return `{"shared_data":{"slots":1024},"redis":{"cluster":"` + helperCluster + `","token":"` + helperToken + `","timeout_ms":400,"sync_interval_ms":100,"breaker":{"failures":3,"cooldown_ms":60000}},` +
		`"policies":[{"name":"p","key":[{"type":"client_ip"}],"limits":` + limits + `,"backend":"hybrid"}]}`
}
