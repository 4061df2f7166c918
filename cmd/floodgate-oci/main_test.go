package main

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

var digestLine = regexp.MustCompile(`manifest digest sha256:([0-9a-f]{64})`)

// runDigest runs the command with args and returns the digest it printed.
func runDigest(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(args, &out); err != nil {
		t.Fatalf("floodgate-oci %s: %v", strings.Join(args, " "), err)
	}
	m := digestLine.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no digest in %q", out.String())
	}
	return m[1]
}

// TestOciAndPushPrintOneDigest builds the image the way `make oci` does (a layout, version dev)
// and the way `make push TAG=v1` does (a push, version v1), and requires one digest: the one
// the README says to pin, the one in the layout's index, the one the registry serves.
func TestOciAndPushPrintOneDigest(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "plugin.wasm")
	if err := os.WriteFile(wasm, []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/team/floodgate:v1"

	oci := runDigest(t, "-wasm", wasm, "-layout", filepath.Join(dir, "oci"), "-version", "dev")
	pushed := runDigest(t, "-wasm", wasm, "-push", ref, "-version", "v1")
	if oci != pushed {
		t.Fatalf("make oci printed %s, make push %s: one plugin.wasm must have one digest", oci, pushed)
	}

	idx, err := layout.ImageIndexFromPath(filepath.Join(dir, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) != 1 || m.Manifests[0].Digest.Hex != oci {
		t.Fatalf("layout index %+v (%v), want the printed digest %s", m, err, oci)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.Hex != oci {
		t.Fatalf("the registry serves %s, printed %s", desc.Digest.Hex, oci)
	}
}
