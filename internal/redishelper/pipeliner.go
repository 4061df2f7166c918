package redishelper

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// pipeliner sends the commands of concurrent requests to Redis together. A command goes at once
// while fewer than max batches are out; otherwise it waits and leaves with the next batch, in one
// pipeline. Under load that makes one write and one read for many commands, in the helper and in
// Redis, instead of one each; a lone command goes as before. It keeps no goroutine of its own:
// the request whose batch comes back sends the one that waited meanwhile, from a new goroutine.
type pipeliner struct {
	client redis.UniversalClient
	max    int

	mu      sync.Mutex
	out     int // batches out
	waiting []*queued
}

type queued struct {
	ctx  context.Context
	cmd  *redis.Cmd
	done chan struct{}
}

// do runs one command; its outcome is in the returned Cmd.
func (p *pipeliner) do(ctx context.Context, args []any) *redis.Cmd {
	q := &queued{ctx: ctx, cmd: redis.NewCmd(ctx, args...)}
	p.mu.Lock()
	if p.out < p.max {
		p.out++
		p.mu.Unlock()
		p.send([]*queued{q})
		p.next()
		return q.cmd
	}
	q.done = make(chan struct{})
	p.waiting = append(p.waiting, q)
	p.mu.Unlock()
	select {
	case <-q.done:
		return q.cmd
	case <-ctx.Done():
		// The batch may still be out and write into q.cmd: answer with another. The command
		// may take effect in Redis, as one whose answer comes too late does.
		late := redis.NewCmd(ctx, args...)
		late.SetErr(ctx.Err())
		return late
	}
}

// next hands the caller's slot to the commands that waited, or frees it.
func (p *pipeliner) next() {
	p.mu.Lock()
	batch := p.waiting
	p.waiting = nil
	if len(batch) == 0 {
		p.out--
	}
	p.mu.Unlock()
	if len(batch) > 0 {
		go func() {
			p.send(batch)
			for _, q := range batch {
				close(q.done)
			}
			p.next()
		}()
	}
}

// send runs the commands of batch whose requests still wait: one alone, several in one
// pipeline. Each request's context bounds its own wait; the pipeline's, by the latest deadline
// among them, is not cancelled with any one request.
func (p *pipeliner) send(batch []*queued) {
	live := batch[:0:0]
	var latest time.Time
	for _, q := range batch {
		if q.ctx.Err() == nil {
			live = append(live, q)
			if d, ok := q.ctx.Deadline(); ok && d.After(latest) {
				latest = d
			}
		}
	}
	switch len(live) {
	case 0:
		return
	case 1:
		_ = p.client.Process(live[0].ctx, live[0].cmd)
		return
	}
	ctx := context.Background()
	if !latest.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, latest)
		defer cancel()
	}
	pipe := p.client.Pipeline()
	for _, q := range live {
		_ = pipe.Process(ctx, q.cmd)
	}
	_, _ = pipe.Exec(ctx)
}
