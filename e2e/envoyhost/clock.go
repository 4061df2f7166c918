package envoyhost

import (
	"sync"
	"time"
)

// Clock is a host clock that only moves when a test moves it, so that a test asserts what
// happens within one tick period, or across one, at any machine speed.
//
// A Host given a Clock (Config.Clock) reads it for proxy_get_current_time_nanoseconds, the clock
// Envoy's dispatcher gives the plugin, and its VMs' timers fire only in Advance, never on their
// own. Everything else keeps real time: WASI's clocks (the Go runtime's scheduler and timers run
// on them), the timeouts of http calls and the servers the plugin calls.
//
// Envoy's sources this follows: Context::getCurrentTimeNanoseconds reads the dispatcher's time
// source (source/extensions/common/wasm/context.cc), and Wasm::tickHandler re-enables a VM's tick
// timer one period after the tick ran (source/extensions/common/wasm/wasm.cc), so a late thread
// sees one tick, not a backlog.
type Clock struct {
	mu    sync.Mutex
	now   time.Time
	hosts []*Host
}

// NewClock returns a clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock d forward, then runs the tick of every VM whose timer came due, on
// the VM's goroutine, and returns once those ticks returned (what they started, such as http
// calls, may still be under way: see Host.WaitCalls). A timer that came due several times
// within d fires once, as an Envoy timer does when its thread is late, and is armed again one
// period after the clock's new time.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	hosts := append([]*Host(nil), c.hosts...)
	c.mu.Unlock()
	for _, h := range hosts {
		for _, v := range h.workers() {
			_ = v.do(func() error {
				if v.tickPeriod <= 0 || now.Before(v.nextTick) {
					return nil
				}
				v.nextTick = now.Add(v.tickPeriod)
				_, _ = v.call("proxy_on_tick", rootContextID)
				return nil
			})
		}
	}
}

func (c *Clock) attach(h *Host) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hosts = append(c.hosts, h)
}

func (c *Clock) detach(h *Host) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.hosts {
		if x == h {
			c.hosts = append(c.hosts[:i], c.hosts[i+1:]...)
			return
		}
	}
}
