package store_test

import (
	"encoding/binary"
	"fmt"

	"github.com/floodgate-proxy/floodgate/store"
)

func ExampleStore_Update() {
	shared := store.NewMemory() // in the plugin: the proxy's shared data
	s, _ := store.New(shared, store.Options{Prefix: "floodgate:per-ip", Slots: 1024, PayloadSize: 8})
	for i := 0; i < 3; i++ {
		_, _ = s.Update([]byte("10.0.0.1"), 0, 60_000, func(cur []byte) ([]byte, bool) {
			var n uint64
			if cur != nil {
				n = binary.LittleEndian.Uint64(cur)
			}
			fmt.Println("seen", n)
			return binary.LittleEndian.AppendUint64(nil, n+1), true
		})
	}
	fmt.Println("entries", shared.Len(), "bound", s.MaxBytes(), "bytes")
	// Output:
	// seen 0
	// seen 1
	// seen 2
	// entries 1 bound 125952 bytes
}
