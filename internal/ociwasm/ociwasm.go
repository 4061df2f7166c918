// Package ociwasm builds the OCI images floodgate ships without Docker: the proxy-wasm module as
// an image Istio's WasmPlugin fetcher accepts (and reads one back the way that fetcher does),
// and a minimal image for the Redis helper's static binary.
//
// Format: the OCI "compat" image: an OCI image manifest whose single layer is a gzip tar holding
// plugin.wasm, exactly what `FROM scratch` + `COPY plugin.wasm ./` would build. Istio accepts it
// (it takes plugin.wasm from the last layer), every registry stores it (no custom artifact media
// types, which some registries refuse), and Docker is not needed to build it. The alternative,
// the Solo "oci" wasm artifact, needs two layers with custom media types and is accepted by
// fewer tools.
//
// For oci:// URLs the WasmPlugin's sha256 field is the manifest digest, which Digest returns.
// The image holds the file and constant metadata only (no version, revision or build time), so
// the digest is a function of the file alone: `make oci` and `make push`, any tag, any machine
// give the same digest for the same plugin.wasm, and that is the digest to pin. The version
// lives in the tag.
package ociwasm

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// FileName is the name Istio looks for in the image's last layer.
const FileName = "plugin.wasm"

// wasmMagic starts every wasm module.
var wasmMagic = []byte{0x00, 'a', 's', 'm'}

// ErrNotWasm is returned for bytes that are not a wasm module.
var ErrNotWasm = errors.New("ociwasm: not a wasm module (no \\0asm magic)")

// Annotations describe the image (OCI image-spec annotation keys). They are part of the manifest,
// hence of its digest: keep them constant for a given file (no version, revision or clock), or
// the same module gets several digests.
type Annotations struct {
	Source string
	// Created defaults to the Unix epoch, so that the same module gives the same digest.
	Created time.Time
}

// Image builds the image of module.
func Image(module []byte, a Annotations) (v1.Image, error) {
	if !bytes.HasPrefix(module, wasmMagic) {
		return nil, ErrNotWasm
	}
	created := createdTime(a)
	img, err := singleFileImage(FileName, 0o644, module, created, func(cfg *v1.ConfigFile) {
		cfg.Architecture, cfg.OS = "wasm", "wasip1"
	})
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, annotations("floodgate", created, a)).(v1.Image), nil
}

// createdTime is the image's creation time: the Unix epoch unless given, so that the same
// content always gives the same digest.
func createdTime(a Annotations) time.Time {
	if a.Created.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return a.Created
}

// singleFileImage builds an OCI image whose one layer (gzip tar) holds the file name; setConfig
// fills in the platform and the process.
func singleFileImage(name string, mode int64, content []byte, created time.Time, setConfig func(*v1.ConfigFile)) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(content)), ModTime: created, Typeflag: tar.TypeReg}); err != nil {
		return nil, fmt.Errorf("ociwasm: tar: %w", err)
	}
	if _, err := tw.Write(content); err != nil {
		return nil, fmt.Errorf("ociwasm: tar: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("ociwasm: tar: %w", err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("ociwasm: layer: %w", err)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	if img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer}); err != nil {
		return nil, fmt.Errorf("ociwasm: append layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("ociwasm: config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: created}
	setConfig(cfg)
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, fmt.Errorf("ociwasm: config: %w", err)
	}
	return img, nil
}

// annotations are the OCI image-spec annotations of an image titled title.
func annotations(title string, created time.Time, a Annotations) map[string]string {
	ann := map[string]string{
		"org.opencontainers.image.title":   title,
		"org.opencontainers.image.created": created.Format(time.RFC3339),
	}
	if a.Source != "" {
		ann["org.opencontainers.image.source"] = a.Source
	}
	return ann
}

// Digest returns the manifest digest, the WasmPlugin sha256 for an oci:// URL (hex, without the
// "sha256:" prefix).
func Digest(img v1.Image) (string, error) {
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("ociwasm: digest: %w", err)
	}
	return d.Hex, nil
}

// WriteLayout writes img into an OCI image layout directory, tagged ref (e.g. "floodgate:v1").
func WriteLayout(dir, ref string, img v1.Image) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("ociwasm: layout: %w", err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
		return fmt.Errorf("ociwasm: layout: %w", err)
	}
	return nil
}

// Push sends img to the registry reference ref ("registry/repo:tag").
func Push(ref string, img v1.Image, opts ...remote.Option) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("ociwasm: reference %q: %w", ref, err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		return fmt.Errorf("ociwasm: push %s: %w", ref, err)
	}
	return nil
}

// Module returns the wasm module of img as Istio's fetcher finds it: plugin.wasm in the last
// layer, a gzip tar.
func Module(img v1.Image) ([]byte, error) {
	layers, err := img.Layers()
	if err != nil || len(layers) == 0 {
		return nil, fmt.Errorf("ociwasm: no layer: %v", err)
	}
	rc, err := layers[len(layers)-1].Uncompressed()
	if err != nil {
		return nil, fmt.Errorf("ociwasm: layer: %w", err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("ociwasm: %s not found in the last layer: %w", FileName, err)
		}
		if h.Name == FileName || h.Name == "./"+FileName {
			module, err := io.ReadAll(io.LimitReader(tr, 256<<20))
			if err != nil {
				return nil, fmt.Errorf("ociwasm: read %s: %w", FileName, err)
			}
			if !bytes.HasPrefix(module, wasmMagic) {
				return nil, ErrNotWasm
			}
			return module, nil
		}
	}
}
