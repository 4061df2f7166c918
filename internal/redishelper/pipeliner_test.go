package redishelper

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floodgate-proxy/floodgate/redislimit"
	"github.com/redis/go-redis/v9"
)

// pipelineCounter counts the pipelines a client sends.
type pipelineCounter struct{ n atomic.Int64 }

func (c *pipelineCounter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (c *pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (c *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

// TestConcurrentCommandsEachGetTheirOwnAnswer: with one command out at a time, concurrent
// decisions leave in pipelines, and each request still gets its own decision's answer (each a
// first request of its own key, of its own cost, so the remaining quota tells them apart).
func TestConcurrentCommandsEachGetTheirOwnAnswer(t *testing.T) {
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{redisAddr}, Username: aclUser, Password: aclPassword, Protocol: 2})
	counter := &pipelineCounter{}
	client.AddHook(counter)
	srv := serve(t, client, Options{InFlight: 1})
	p := policy(t) // 10 a second
	if err := redisAdmin.ScriptLoad(t.Context(), redislimit.ScriptFor(p).Source).Err(); err != nil {
		t.Fatal(err)
	}
	const requests = 64
	var wg sync.WaitGroup
	for i := range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cost := int64(1 + i%10)
			cmd, _ := json.Marshal(append([]string{"EVALSHA", redislimit.ScriptFor(p).SHA, "1", fmt.Sprintf("{floodgate:own:%d}", i)},
				redislimit.Args(p, redislimit.Call{Cost: cost, NowMs: -1})...))
			status, body := call(t, srv, "/", testToken, string(cmd))
			var answer struct{ Result []int64 }
			if err := json.Unmarshal([]byte(body), &answer); status != 200 || err != nil {
				t.Errorf("request %d: %d %s", i, status, body)
				return
			}
			if res, err := redislimit.Result(answer.Result); err != nil || !res.Allowed || res.Remaining != 10-cost {
				t.Errorf("request %d of cost %d: %+v %v, want allowed with %d remaining", i, cost, res, err, 10-cost)
			}
		}()
	}
	wg.Wait()
	if counter.n.Load() == 0 {
		t.Error("no command left in a pipeline: nothing was batched")
	}
}

// TestAWaitingCommandGivesUpAtItsTimeout: a command waiting behind a stalled one answers 504 at
// its own timeout, not when the stalled one comes back.
func TestAWaitingCommandGivesUpAtItsTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0") // a "Redis" that reads commands and never answers
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	received := make(chan struct{}, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1024)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					received <- struct{}{}
				}
			}()
		}
	}()
	// go-redis applies no context deadline to the connection: the stalled command holds its
	// slot for the whole read timeout.
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{l.Addr().String()}, Protocol: 2, MaxRetries: -1,
		ReadTimeout: 3 * time.Second})
	srv := serve(t, client, Options{InFlight: 1, Timeout: 200 * time.Millisecond})
	first := make(chan int, 1)
	go func() {
		status, _ := call(t, srv, "/", testToken, `["PING"]`)
		first <- status
	}()
	<-received // the first command holds the only slot
	start := time.Now()
	status, body := call(t, srv, "/", testToken, `["PING"]`)
	if status != 504 || time.Since(start) > 2*time.Second {
		t.Fatalf("waiting command: %d %s after %s, want 504 within its timeout", status, body, time.Since(start))
	}
	if s := <-first; s != 504 {
		t.Fatalf("stalled command: %d, want 504", s)
	}
}
