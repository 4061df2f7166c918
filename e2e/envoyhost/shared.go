package envoyhost

import "sync"

// SharedData is one proxy's shared-data store for one vm_id, with Envoy's semantics: get returns
// the value and its CAS; set with CAS 0 overwrites; a missing key is inserted whatever the CAS;
// a non-zero CAS that does not match fails; every set takes a new CAS from one counter; nothing is
// ever deleted.
type SharedData struct {
	mu    sync.Mutex
	cas   uint32
	items map[string]sharedItem
	bytes int
}

type sharedItem struct {
	value []byte
	cas   uint32
}

// NewSharedData returns an empty store.
func NewSharedData() *SharedData { return &SharedData{items: make(map[string]sharedItem)} }

// Get returns a copy of key's value and its CAS; ok is false when the key was never set.
func (s *SharedData) Get(key string) (value []byte, cas uint32, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.items[key]
	if !ok {
		return nil, 0, false
	}
	return append([]byte(nil), it.value...), it.cas, true
}

// Set stores value under key; it reports false on a CAS mismatch.
func (s *SharedData) Set(key string, value []byte, cas uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, exists := s.items[key]
	if exists && cas != 0 && cas != it.cas {
		return false
	}
	s.cas++
	if s.cas == 0 { // 0 means "no CAS"; skip it on wrap-around
		s.cas++
	}
	if exists {
		s.bytes -= len(it.value)
	} else {
		s.bytes += len(key)
	}
	s.bytes += len(value)
	s.items[key] = sharedItem{value: append([]byte(nil), value...), cas: s.cas}
	return true
}

// Len returns the number of keys ever set.
func (s *SharedData) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

// Bytes returns the total size of keys and values.
func (s *SharedData) Bytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// Keys returns every key (in no order).
func (s *SharedData) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.items))
	for k := range s.items {
		keys = append(keys, k)
	}
	return keys
}
