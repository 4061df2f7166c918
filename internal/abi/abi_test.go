package abi

import (
	"bytes"
	"errors"
	"reflect"
	"runtime"
	"testing"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

func TestMapRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		pairs [][2]string
	}{
		{name: "empty", pairs: [][2]string{}},
		{name: "one", pairs: [][2]string{{":status", "200"}}},
		{name: "several with empty values", pairs: [][2]string{{"a", ""}, {"", "b"}, {"x-key", "v\x00with nul"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeMap(EncodeMap(tc.pairs))
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.pairs) == 0 && len(got) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tc.pairs) {
				t.Fatalf("got %q, want %q", got, tc.pairs)
			}
		})
	}
}

func TestEncodeMapLayout(t *testing.T) {
	want := []byte{1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 'k', 0, 'v', 'w', 0}
	if got := EncodeMap([][2]string{{"k", "vw"}}); !bytes.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestAppendMapReusesADirtyBuffer(t *testing.T) {
	dirty := bytes.Repeat([]byte{0xff}, 64)
	got := AppendMap(dirty[:2], [][2]string{{"k", "vw"}})
	want := append([]byte{0xff, 0xff}, EncodeMap([][2]string{{"k", "vw"}})...)
	if !bytes.Equal(got, want) || &got[0] != &dirty[0] {
		t.Fatalf("got %v, want %v in the same storage", got, want)
	}
}

func TestDecodeMapMalformed(t *testing.T) {
	tests := []struct {
		name string
		buf  []byte
	}{
		{name: "short count", buf: []byte{1, 0}},
		{name: "count too large", buf: []byte{0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0}},
		{name: "lengths past the end", buf: []byte{1, 0, 0, 0, 9, 0, 0, 0, 9, 0, 0, 0, 'a', 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeMap(tc.buf); !errors.Is(err, ErrMalformedMap) {
				t.Fatalf("err = %v, want ErrMalformedMap", err)
			}
		})
	}
}

func FuzzDecodeMap(f *testing.F) {
	f.Add(EncodeMap([][2]string{{"a", "b"}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, buf []byte) {
		pairs, err := DecodeMap(buf)
		if err != nil {
			return
		}
		again, err := DecodeMap(EncodeMap(pairs))
		if err != nil || len(again) != len(pairs) {
			t.Fatalf("re-decode of %q: %v", pairs, err)
		}
	})
}

func TestAllocationSurvivesGC(t *testing.T) {
	ptr := Allocate(64)
	// The host writes into the buffer through linear memory; here we find it through Take after
	// several collections, which must not have freed or moved it.
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	buf := Take(ptr, 64)
	if len(buf) != 64 {
		t.Fatalf("Take returned %d bytes, want 64", len(buf))
	}
	if len(pinned) != 0 || used != 0 {
		t.Fatalf("%d buffers still pinned, %d arena bytes in use after Take", len(pinned), used)
	}
	if Take(ptr, 64) != nil {
		t.Fatal("a released buffer was returned twice")
	}
}

func TestArenaServesEveryHostCall(t *testing.T) {
	// Two buffers in one host call are distinct and both found.
	p1, p2 := Allocate(5), Allocate(100)
	if p1 == p2 {
		t.Fatal("two buffers of one host call share an address")
	}
	if got := Take(p2, 100); len(got) != 100 {
		t.Fatalf("second buffer: %d bytes", len(got))
	}
	// The next host call reuses the arena: a taken buffer is valid until then only.
	if p3 := Allocate(5); p3 != p1 {
		t.Fatalf("the arena was not reused: %#x, then %#x", p1, p3)
	}
	Take(0, 0)
	// A buffer larger than the arena may grow to is allocated apart and survives collections.
	big := Allocate(arenaMax + 1)
	runtime.GC()
	if got := Take(big, arenaMax+1); len(got) != arenaMax+1 {
		t.Fatalf("large buffer: %d bytes", len(got))
	}
	// A buffer larger than the arena, but within its bound, grows it.
	if p := Allocate(uint32(len(arena) + 1)); len(arena) < arenaMin || Take(p, 1) == nil {
		t.Fatal("the arena did not grow")
	}
}

func TestTakeRejectsForeignOrOversized(t *testing.T) {
	ptr := Allocate(8)
	if got := Take(ptr, 9); got != nil {
		t.Fatalf("Take of more bytes than allocated gave %d bytes", len(got))
	}
	if got := Take(0, 0); got != nil {
		t.Fatal("Take(0, 0) must give nil")
	}
}

type recorder struct {
	types.DefaultVMContext
	calls []string
}

func (r *recorder) NewPluginContext(id uint32) types.PluginContext {
	r.calls = append(r.calls, "root")
	return &recRoot{r: r}
}

type recRoot struct {
	types.DefaultPluginContext
	r *recorder
}

func (p *recRoot) OnPluginStart(int) types.OnPluginStartStatus {
	p.r.calls = append(p.r.calls, "start")
	return types.OnPluginStartStatusOK
}
func (p *recRoot) OnTick() { p.r.calls = append(p.r.calls, "tick") }
func (p *recRoot) NewHttpContext(uint32) types.HttpContext {
	p.r.calls = append(p.r.calls, "http")
	return &recStream{r: p.r}
}

type recStream struct {
	types.DefaultHttpContext
	r *recorder
}

func (s *recStream) OnHttpRequestHeaders(n int, eos bool) types.Action {
	s.r.calls = append(s.r.calls, "reqh")
	return types.ActionPause
}
func (s *recStream) OnHttpStreamDone() { s.r.calls = append(s.r.calls, "done") }

func TestDispatcherRoutesCallbacks(t *testing.T) {
	r := &recorder{}
	d := NewDispatcher(r)
	d.ContextCreate(1, 0)
	if !d.VMStart(0) || !d.Configure(1, 10) {
		t.Fatal("start or configure failed")
	}
	if d.Configure(99, 0) {
		t.Fatal("configure of an unknown root must fail")
	}
	d.Tick(1)
	d.ContextCreate(2, 1)
	if got := d.Stream(2, RequestHeaders, 3, true); got != types.ActionPause {
		t.Fatalf("action = %v, want pause", got)
	}
	if got := d.Stream(42, RequestHeaders, 3, true); got != types.ActionContinue {
		t.Fatalf("unknown stream action = %v, want continue", got)
	}
	var got []int
	d.RegisterCallout(7, func(h, b, tr int) { got = []int{h, b, tr} })
	d.HTTPCallResponse(7, 1, 2, 3)
	d.HTTPCallResponse(7, 9, 9, 9) // a second answer for the same token is ignored
	if !reflect.DeepEqual(got, []int{1, 2, 3}) {
		t.Fatalf("callout got %v", got)
	}
	d.Log(2)
	if !d.Done(2) {
		t.Fatal("a stream is always done")
	}
	d.Delete(2)
	if roots, streams := d.Contexts(); roots != 1 || streams != 0 {
		t.Fatalf("contexts = %d roots, %d streams", roots, streams)
	}
	want := []string{"root", "start", "tick", "http", "reqh", "done"}
	if !reflect.DeepEqual(r.calls, want) {
		t.Fatalf("calls = %v, want %v", r.calls, want)
	}
}
