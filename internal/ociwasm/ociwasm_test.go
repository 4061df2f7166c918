package ociwasm

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// module is a minimal valid wasm module: the magic and version 1.
var module = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

func TestPushPullRoundTrip(t *testing.T) {
	img, err := Image(module, Annotations{Source: "https://github.com/floodgate-proxy/floodgate"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/floodgate:v1.2.3"
	if err := Push(ref, img); err != nil {
		t.Fatal(err)
	}
	parsed, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(parsed)
	if err != nil {
		t.Fatal(err)
	}
	// The digest printed for the WasmPlugin sha256 is the manifest digest of what was pulled.
	want, _ := Digest(img)
	got, _ := pulled.Digest()
	if got.Hex != want {
		t.Fatalf("pulled digest %s, printed %s", got.Hex, want)
	}
	manifest, err := pulled.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if manifest.MediaType != types.OCIManifestSchema1 || manifest.Config.MediaType != types.OCIConfigJSON ||
		len(manifest.Layers) != 1 || manifest.Layers[0].MediaType != types.OCILayer {
		t.Fatalf("manifest %+v", manifest)
	}
	if manifest.Annotations["org.opencontainers.image.source"] == "" || manifest.Annotations["org.opencontainers.image.title"] != "floodgate" {
		t.Fatalf("annotations %v", manifest.Annotations)
	}
	back, err := Module(pulled)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, module) {
		t.Fatalf("module %v, want %v", back, module)
	}
}

func TestLayoutAndReproducibility(t *testing.T) {
	a, _ := Image(module, Annotations{})
	b, _ := Image(module, Annotations{})
	da, _ := Digest(a)
	db, _ := Digest(b)
	if da != db {
		t.Fatalf("the same module gave digests %s and %s", da, db)
	}
	dir := t.TempDir()
	if err := WriteLayout(dir, "floodgate:v1", a); err != nil {
		t.Fatal(err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) != 1 || m.Manifests[0].Digest.Hex != da {
		t.Fatalf("layout index %+v: %v", m, err)
	}
}

func TestRefusesWhatIsNotWasm(t *testing.T) {
	if _, err := Image([]byte("#!/bin/sh"), Annotations{}); !errors.Is(err, ErrNotWasm) {
		t.Fatalf("err = %v", err)
	}
}

func TestBinaryImage(t *testing.T) {
	img, err := BinaryImage("redis-helper", []byte("\x7fELF fake"), "amd64", Annotations{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" || cfg.Config.Entrypoint[0] != "/redis-helper" || cfg.Config.User != "65532:65532" {
		t.Fatalf("config %+v", cfg.Config)
	}
	if layers, _ := img.Layers(); len(layers) != 1 {
		t.Fatalf("%d layers", len(layers))
	}
}
