package store

import (
	"sync"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// Memory is an in-process SharedData with Envoy's semantics (no delete, one CAS counter), safe
// for concurrent use. Tests and native runs use it.
type Memory struct {
	mu    sync.Mutex
	cas   uint32
	items map[string]memItem
	bytes int
}

type memItem struct {
	value []byte
	cas   uint32
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{items: make(map[string]memItem)} }

// Get returns a copy of key's value and its CAS.
func (m *Memory) Get(key string) ([]byte, uint32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.items[key]
	if !ok {
		return nil, 0, types.ErrorStatusNotFound
	}
	return append([]byte(nil), it.value...), it.cas, nil
}

// Set stores a copy of value under key if cas is 0, the key is missing, or cas matches.
func (m *Memory) Set(key string, value []byte, cas uint32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.items[key]
	if ok && cas != 0 && cas != it.cas {
		return types.ErrorStatusCasMismatch
	}
	m.cas++
	if m.cas == 0 { // 0 means "no CAS"; skip it on wrap-around
		m.cas++
	}
	if ok {
		m.bytes -= len(it.value)
	} else {
		m.bytes += len(key)
	}
	m.bytes += len(value)
	m.items[key] = memItem{value: append([]byte(nil), value...), cas: m.cas}
	return nil
}

// Len returns the number of keys.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.items)
}

// TotalBytes returns the size of every key and value.
func (m *Memory) TotalBytes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes
}

// Keys returns every key (in no order).
func (m *Memory) Keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.items))
	for k := range m.items {
		keys = append(keys, k)
	}
	return keys
}
