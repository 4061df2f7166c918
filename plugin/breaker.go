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
type breaker struct {
	key        string
	cluster    string
	failures   uint32
	cooldownMs int64
	opened     host.Metric
}

func newBreaker(cfg *config.Config) (*breaker, error) {
	b := &breaker{key: cfg.SharedData.Prefix + ":breaker:" + cfg.Redis.Cluster, cluster: cfg.Redis.Cluster,
		failures: cfg.Redis.BreakerFailures, cooldownMs: cfg.Redis.BreakerCooldownMs}
	var err error
	if b.opened, err = host.DefineMetric(host.Counter, "floodgate.redis.breaker_opened"); err != nil {
		return nil, fmt.Errorf("define metric: %w", err)
	}
	return b, nil
}

// The breaker's shared-data value: consecutive failures u32, then open-until ms i64.
const breakerSize = 12

// open tells whether calls are suspended now.
func (b *breaker) open(now int64) bool {
	v, _, err := host.SharedData(b.key)
	return err == nil && len(v) == breakerSize && int64(binary.LittleEndian.Uint64(v[4:])) > now
}

// record counts a success (clearing the failures, written only when there were some) or a
// failure (opening the breaker at the threshold), with compare-and-swap.
func (b *breaker) record(ok bool, now int64) {
	opening := false
	err := casUpdate(b.key, func(v []byte) ([]byte, bool) {
		opening = false
		var failures uint32
		var until int64
		if len(v) == breakerSize {
			failures, until = binary.LittleEndian.Uint32(v), int64(binary.LittleEndian.Uint64(v[4:]))
		}
		switch {
		case ok && failures == 0:
			return nil, false
		case ok:
			failures = 0
		case until > now:
			return nil, false // already open
		default:
			failures++
			if failures >= b.failures {
				failures, until, opening = 0, now+b.cooldownMs, true
			}
		}
		return binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint32(nil, failures), uint64(until)), true
	})
	if err == nil && opening {
		_ = b.opened.Add(1)
		host.Log(host.LevelWarn, fmt.Sprintf("floodgate: redis helper %s failed %d times in a row: not calling it for %d ms",
			b.cluster, b.failures, b.cooldownMs))
	}
}
