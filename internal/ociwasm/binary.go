package ociwasm

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// BinaryImage builds a minimal Linux image for a static executable (the Redis helper): one layer
// holding /name, run as that entrypoint by an unprivileged user (65532). No base image: the
// binary must be static (CGO_ENABLED=0).
func BinaryImage(name string, binary []byte, arch string, a Annotations) (v1.Image, error) {
	created := createdTime(a)
	img, err := singleFileImage(name, 0o755, binary, created, func(cfg *v1.ConfigFile) {
		cfg.Architecture, cfg.OS = arch, "linux"
		cfg.Config.Entrypoint = []string{"/" + name}
		cfg.Config.User = "65532:65532"
	})
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, annotations(name, created, a)).(v1.Image), nil
}
