package plugin

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/floodgate-proxy/floodgate/config"
	"github.com/floodgate-proxy/floodgate/internal/host"
)

// errBreakerOpen is the failure of a decision not attempted because the breaker is open.
var errBreakerOpen = errors.New("redis helper breaker open: not calling it")

// breaker stops calls to the helper for a cool-down after repeated failures, so that a down
// helper never makes requests queue behind callouts. Its state is in shared data, common to every
// worker of the proxy.
//
// Closed, it lets every call through and counts consecutive failures; at the threshold it opens
// for the cool-down, during which no call is made (the failure mode decides). Then it is half
// open: exactly one call, the probe, goes through (the first worker to claim it in shared data);
// every other decision still takes the failure mode until the probe answers. A probe that
// succeeds closes the breaker; one that fails opens it for another cool-down. A probe whose answer
// never comes (its VM was replaced) is given up after probeTimeoutMs, and another is sent.
type breaker struct {
	key            string
	cluster        string
	failures       uint32
	cooldownMs     int64
	probeTimeoutMs int64
	opened         host.Metric
}

func newBreaker(cfg *config.Config) (*breaker, error) {
	r := cfg.Redis
	b := &breaker{key: cfg.SharedData.Prefix + ":breaker:" + r.Cluster, cluster: r.Cluster,
		failures: r.BreakerFailures, cooldownMs: r.BreakerCooldownMs,
		probeTimeoutMs: 2 * int64(max(r.TimeoutMs, r.SyncTimeoutMs))}
	var err error
	if b.opened, err = host.DefineMetric(host.Counter, "floodgate.redis.breaker_opened"); err != nil {
		return nil, fmt.Errorf("define metric: %w", err)
	}
	return b, nil
}

// breakerState is the breaker's shared-data value (breakerSize bytes, little endian): consecutive
// failures u32; open-until ms i64 (0: closed; in the past: half open); probe-until ms i64 (a probe
// is in flight until then).
type breakerState struct {
	failures          uint32
	openUntil, probed int64
}

const breakerSize = 20

func (s *breakerState) decode(v []byte) {
	*s = breakerState{}
	if len(v) == breakerSize {
		s.failures = binary.LittleEndian.Uint32(v)
		s.openUntil = int64(binary.LittleEndian.Uint64(v[4:]))
		s.probed = int64(binary.LittleEndian.Uint64(v[12:]))
	}
}

func (s *breakerState) encode() []byte {
	b := binary.LittleEndian.AppendUint32(make([]byte, 0, breakerSize), s.failures)
	b = binary.LittleEndian.AppendUint64(b, uint64(s.openUntil))
	return binary.LittleEndian.AppendUint64(b, uint64(s.probed))
}

// open tells whether calls are suspended now. Half open, it lets exactly one caller through (the
// probe) until the probe answers or times out; a decision that calls it with probe set must make
// the call and record its outcome.
func (b *breaker) open(now int64) bool {
	v, _, err := host.SharedData(b.key)
	if err != nil || len(v) != breakerSize {
		return false
	}
	var s breakerState
	s.decode(v)
	switch {
	case s.openUntil == 0:
		return false
	case s.openUntil > now || s.probed > now:
		return true
	}
	// Half open, no probe in flight: claim the probe.
	claimed := false
	_ = casUpdate(b.key, func(cur []byte) ([]byte, bool) {
		s.decode(cur)
		if claimed = s.openUntil != 0 && s.openUntil <= now && s.probed <= now; !claimed {
			return nil, false
		}
		s.probed = now + b.probeTimeoutMs
		return s.encode(), true
	})
	return !claimed
}

// record counts a success (closing the breaker, written only when it was not closed and clean)
// or a failure (opening the breaker at the threshold, or again when a probe failed), with
// compare-and-swap.
func (b *breaker) record(ok bool, now int64) {
	opening, closing := false, false
	err := casUpdate(b.key, func(v []byte) ([]byte, bool) {
		var s breakerState
		s.decode(v)
		opening, closing = false, false
		switch {
		case ok && s == breakerState{}:
			return nil, false
		case ok:
			closing = s.openUntil != 0
			s = breakerState{}
		case s.openUntil > now:
			return nil, false // already open
		case s.openUntil != 0:
			// Half open: the probe (or a sync, which goes on while the breaker is open) failed.
			s.openUntil, s.probed = now+b.cooldownMs, 0
		default:
			s.failures++
			if s.failures >= b.failures {
				s.failures, s.openUntil, opening = 0, now+b.cooldownMs, true
			}
		}
		return s.encode(), true
	})
	switch {
	case err != nil:
	case opening:
		_ = b.opened.Add(1)
		host.Log(host.LevelWarn, fmt.Sprintf("floodgate: redis helper %s failed %d times in a row: not calling it for %d ms (the failure mode decides), then one probe",
			b.cluster, b.failures, b.cooldownMs))
	case closing:
		host.Log(host.LevelInfo, "floodgate: redis helper "+b.cluster+" answers again: calling it")
	}
}
