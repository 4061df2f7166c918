package abi

import (
	"encoding/binary"
	"errors"
	"slices"
)

// ErrMalformedMap is returned for a header map whose encoding does not add up.
var ErrMalformedMap = errors.New("abi: malformed header map")

// EncodeMap serializes pairs in the proxy-wasm header-map format: a little-endian u32 count, a
// (u32 key length, u32 value length) per pair, then every key and value followed by a NUL byte.
func EncodeMap(pairs [][2]string) []byte { return AppendMap(nil, pairs) }

// AppendMap appends the encoding of pairs (see EncodeMap) to dst.
func AppendMap(dst []byte, pairs [][2]string) []byte {
	size := 4
	for _, p := range pairs {
		size += 8 + len(p[0]) + 1 + len(p[1]) + 1
	}
	start := len(dst)
	dst = slices.Grow(dst, size)[:start+size]
	buf := dst[start:]
	binary.LittleEndian.PutUint32(buf, uint32(len(pairs)))
	off := 4
	for _, p := range pairs {
		binary.LittleEndian.PutUint32(buf[off:], uint32(len(p[0])))
		binary.LittleEndian.PutUint32(buf[off+4:], uint32(len(p[1])))
		off += 8
	}
	for _, p := range pairs {
		off += copy(buf[off:], p[0])
		buf[off] = 0
		off++
		off += copy(buf[off:], p[1])
		buf[off] = 0
		off++
	}
	return dst
}

// DecodeMap parses the proxy-wasm header-map format written by EncodeMap.
func DecodeMap(buf []byte) ([][2]string, error) {
	if len(buf) == 0 {
		return nil, nil
	}
	if len(buf) < 4 {
		return nil, ErrMalformedMap
	}
	n := int(binary.LittleEndian.Uint32(buf))
	if n > (len(buf)-4)/10 {
		return nil, ErrMalformedMap
	}
	data := 4 + 8*n
	pairs := make([][2]string, n)
	for i := range pairs {
		kl := int(binary.LittleEndian.Uint32(buf[4+8*i:]))
		vl := int(binary.LittleEndian.Uint32(buf[8+8*i:]))
		if kl < 0 || vl < 0 || data+kl+1+vl+1 > len(buf) {
			return nil, ErrMalformedMap
		}
		pairs[i][0] = string(buf[data : data+kl])
		data += kl + 1
		pairs[i][1] = string(buf[data : data+vl])
		data += vl + 1
	}
	return pairs, nil
}
