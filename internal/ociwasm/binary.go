package ociwasm

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BinaryImage builds a minimal Linux image for a static executable (the Redis helper): one layer
// holding /name, run as that entrypoint by an unprivileged user (65532). No base image: the
// binary must be static (CGO_ENABLED=0).
func BinaryImage(name string, binary []byte, arch string, a Annotations) (v1.Image, error) {
	created := a.Created
	if created.IsZero() {
		created = time.Unix(0, 0).UTC()
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(binary)), ModTime: created, Typeflag: tar.TypeReg}); err != nil {
		return nil, fmt.Errorf("ociwasm: tar: %w", err)
	}
	if _, err := tw.Write(binary); err != nil {
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
	cfg.Architecture, cfg.OS, cfg.Created = arch, "linux", v1.Time{Time: created}
	cfg.Config.Entrypoint = []string{"/" + name}
	cfg.Config.User = "65532:65532"
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, fmt.Errorf("ociwasm: config: %w", err)
	}
	return mutate.Annotations(img, annotations(name, created, a)).(v1.Image), nil
}
