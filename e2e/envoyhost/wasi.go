package envoyhost

import (
	"crypto/rand"
	"sort"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/api"
)

const wasiModule = "wasi_snapshot_preview1"

// WASI errno values.
const (
	errnoSuccess = 0
	errnoBadf    = 8
	errnoFault   = 21
	errnoNosys   = 52
	errnoNotsup  = 58
)

// wasiFunctions is the "Envoy 1.33" WASI profile: exactly the functions proxy-wasm-cpp-host
// provides, behaving as it does. poll_oneoff and fd_fdstat_set_flags exist but answer ENOSYS:
// the Go runtime dies ("poll_oneoff failed") if it ever has to wait in netpoll.
var wasiFunctions = map[string]hostFunc{
	"fd_write":            {params: n32(4), fn: wasiFdWrite},
	"fd_read":             {params: n32(4), fn: func(*vm, []uint64) uint32 { return errnoNosys }},
	"fd_seek":             {params: []api.ValueType{i32, i64, i32, i32}, fn: func(*vm, []uint64) uint32 { return errnoSuccess }},
	"fd_close":            {params: n32(1), fn: func(*vm, []uint64) uint32 { return errnoSuccess }},
	"fd_fdstat_get":       {params: n32(2), fn: wasiFdFdstatGet},
	"fd_fdstat_set_flags": {params: n32(2), fn: func(*vm, []uint64) uint32 { return errnoNosys }},
	"fd_prestat_get":      {params: n32(2), fn: func(*vm, []uint64) uint32 { return errnoBadf }},
	"fd_prestat_dir_name": {params: n32(3), fn: func(*vm, []uint64) uint32 { return errnoNosys }},
	"path_open":           {params: []api.ValueType{i32, i32, i32, i32, i32, i64, i64, i32, i32}, fn: func(*vm, []uint64) uint32 { return errnoNosys }},
	"environ_get":         {params: n32(2), fn: wasiEnvironGet},
	"environ_sizes_get":   {params: n32(2), fn: wasiEnvironSizesGet},
	"args_get":            {params: n32(2), fn: func(*vm, []uint64) uint32 { return errnoSuccess }},
	"args_sizes_get":      {params: n32(2), fn: wasiArgsSizesGet},
	"clock_time_get":      {params: []api.ValueType{i32, i64, i32}, fn: wasiClockTimeGet},
	"random_get":          {params: n32(2), fn: wasiRandomGet},
	"proc_exit":           {params: n32(1), fn: wasiProcExit, void: true},
	"sched_yield":         {params: nil, fn: func(*vm, []uint64) uint32 { return errnoSuccess }},
	"poll_oneoff":         {params: n32(4), fn: func(*vm, []uint64) uint32 { return errnoNosys }},
}

// start is the origin of the monotonic clock, shared by every VM of the process like a host's
// steady clock.
var start = time.Now()

func wasiFdWrite(v *vm, s []uint64) uint32 {
	fd, iovs, n := u(s[0]), u(s[1]), u(s[2])
	level := uint32(2) // stdout: info
	switch fd {
	case 1:
	case 2:
		level = 4 // stderr: error
	default:
		return errnoBadf
	}
	mem := v.mod.Memory()
	var b strings.Builder
	for i := uint32(0); i < n; i++ {
		ptr, ok1 := mem.ReadUint32Le(iovs + 8*i)
		size, ok2 := mem.ReadUint32Le(iovs + 8*i + 4)
		if !ok1 || !ok2 {
			return errnoFault
		}
		data, ok := mem.Read(ptr, size)
		if !ok {
			return errnoFault
		}
		b.Write(data)
	}
	written := b.Len()
	if written > 0 {
		v.host.log(v.index, level, strings.TrimSuffix(b.String(), "\n"))
	}
	if !mem.WriteUint32Le(u(s[3]), uint32(written)) {
		return errnoFault
	}
	return errnoSuccess
}

func wasiFdFdstatGet(v *vm, s []uint64) uint32 {
	fd := u(s[0])
	if fd != 1 && fd != 2 {
		return errnoBadf
	}
	var stat [24]byte
	stat[8] = 64 // fs_rights_base: FD_WRITE
	if !v.mod.Memory().Write(u(s[1]), stat[:]) {
		return errnoFault
	}
	return errnoSuccess
}

func (v *vm) environ() []string {
	out := make([]string, 0, len(v.host.cfg.Env))
	for k, val := range v.host.cfg.Env {
		out = append(out, k+"="+val)
	}
	sort.Strings(out)
	return out
}

func wasiEnvironGet(v *vm, s []uint64) uint32 {
	arr, buf := u(s[0]), u(s[1])
	mem := v.mod.Memory()
	for _, e := range v.environ() {
		if !mem.WriteUint32Le(arr, buf) || !mem.Write(buf, append([]byte(e), 0)) {
			return errnoFault
		}
		arr += 4
		buf += uint32(len(e) + 1)
	}
	return errnoSuccess
}

func wasiEnvironSizesGet(v *vm, s []uint64) uint32 {
	env := v.environ()
	size := 0
	for _, e := range env {
		size += len(e) + 1
	}
	mem := v.mod.Memory()
	if !mem.WriteUint32Le(u(s[0]), uint32(len(env))) || !mem.WriteUint32Le(u(s[1]), uint32(size)) {
		return errnoFault
	}
	return errnoSuccess
}

func wasiArgsSizesGet(v *vm, s []uint64) uint32 {
	mem := v.mod.Memory()
	if !mem.WriteUint32Le(u(s[0]), 0) || !mem.WriteUint32Le(u(s[1]), 0) {
		return errnoFault
	}
	return errnoSuccess
}

func wasiClockTimeGet(v *vm, s []uint64) uint32 {
	var t uint64
	switch u(s[0]) {
	case 0: // realtime
		t = now()
	case 1: // monotonic
		t = uint64(time.Since(start).Nanoseconds())
	default:
		return errnoNotsup
	}
	if !v.mod.Memory().WriteUint64Le(u(s[2]), t) {
		return errnoFault
	}
	return errnoSuccess
}

func wasiRandomGet(v *vm, s []uint64) uint32 {
	buf := make([]byte, u(s[1]))
	_, _ = rand.Read(buf)
	if !v.mod.Memory().Write(u(s[0]), buf) {
		return errnoFault
	}
	return errnoSuccess
}

func wasiProcExit(v *vm, s []uint64) uint32 {
	// cpp-host reports an error and fails the VM.
	panic(errTrap{msg: "proc_exit called"})
}
