package envoyhost

import (
	"github.com/floodgate-proxy/floodgate/store"
)

// SharedData is one proxy's shared-data store for one vm_id, with Envoy's semantics: get returns
// the value and its CAS; set with CAS 0 overwrites; a missing key is inserted whatever the CAS;
// a non-zero CAS that does not match fails; every set takes a new CAS from one counter; nothing is
// ever deleted. It is store.Memory, with the host's answers.
type SharedData struct{ m *store.Memory }

// NewSharedData returns an empty store.
func NewSharedData() *SharedData { return &SharedData{m: store.NewMemory()} }

// Get returns a copy of key's value and its CAS; ok is false when the key was never set.
func (s *SharedData) Get(key string) (value []byte, cas uint32, ok bool) {
	value, cas, err := s.m.Get(key)
	return value, cas, err == nil
}

// Set stores value under key; it reports false on a CAS mismatch.
func (s *SharedData) Set(key string, value []byte, cas uint32) bool {
	return s.m.Set(key, value, cas) == nil
}

// Len returns the number of keys ever set.
func (s *SharedData) Len() int { return s.m.Len() }

// Bytes returns the total size of keys and values.
func (s *SharedData) Bytes() int { return s.m.TotalBytes() }

// Keys returns every key (in no order).
func (s *SharedData) Keys() []string { return s.m.Keys() }
