package plugin

import (
	"errors"

	"github.com/floodgate-proxy/floodgate/internal/host"
	"github.com/floodgate-proxy/floodgate/store"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// sharedData is the proxy's shared data, as the store wants it.
type sharedData struct{}

func (sharedData) Get(key string) ([]byte, uint32, error) { return host.SharedData(key) }
func (sharedData) Set(key string, value []byte, cas uint32) error {
	return host.SetSharedData(key, value, cas)
}

// casUpdate reads key, lets fn change its value (nil when absent), and writes it back with
// compare-and-swap, retrying a few times.
func casUpdate(key string, fn func(cur []byte) (next []byte, write bool)) error {
	for attempt := 0; attempt < 16; attempt++ {
		cur, cas, err := host.SharedData(key)
		if err != nil && !errors.Is(err, types.ErrorStatusNotFound) {
			return err
		}
		next, write := fn(cur)
		if !write {
			return nil
		}
		if err != nil {
			cas = 1<<32 - 1 // absent: insert only if still absent (see store.Update)
		}
		if err = host.SetSharedData(key, next, cas); !errors.Is(err, types.ErrorStatusCasMismatch) {
			return err
		}
	}
	return store.ErrContention
}
