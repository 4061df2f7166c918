// Command floodgate-oci packages plugin.wasm as an OCI image for Istio's WasmPlugin (see
// internal/ociwasm for the format), or with -helper the Redis helper's static binary as a
// minimal Linux image, into an OCI image layout, and optionally pushes it. It prints the
// manifest digest (the WasmPlugin's sha256 field). No Docker needed.
//
// The digest depends on the file alone: the layout and the push of one plugin.wasm print the
// same digest whatever -version (the tag) is.
//
//	floodgate-oci -wasm plugin.wasm -layout build/oci -version v0.1.0
//	floodgate-oci -wasm plugin.wasm -push registry.example.com/floodgate:v0.1.0
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/floodgate-proxy/floodgate/internal/ociwasm"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		log.Fatal(err)
	}
}

// run does the work of the command with its arguments, printing to out.
func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("floodgate-oci", flag.ContinueOnError)
	wasmPath := fs.String("wasm", "plugin.wasm", "the module")
	helperPath := fs.String("helper", "", "package instead the static Linux binary of the Redis helper")
	arch := fs.String("arch", "amd64", "architecture of -helper")
	dir := fs.String("layout", "", "write an OCI image layout here")
	push := fs.String("push", "", "push to this reference (registry/repository:tag), with the docker config's credentials")
	version := fs.String("version", "dev", "the tag of the image in the layout (not part of the image: the digest does not depend on it)")
	source := fs.String("source", "https://github.com/floodgate-proxy/floodgate", "org.opencontainers.image.source")
	if err := fs.Parse(args); err != nil {
		return err
	}

	ann := ociwasm.Annotations{Source: *source}
	var img v1.Image
	name := "floodgate"
	if *helperPath != "" {
		binary, err := os.ReadFile(*helperPath)
		if err != nil {
			return err
		}
		name = "redis-helper"
		if img, err = ociwasm.BinaryImage(name, binary, *arch, ann); err != nil {
			return err
		}
	} else {
		module, err := os.ReadFile(*wasmPath)
		if err != nil {
			return err
		}
		if img, err = ociwasm.Image(module, ann); err != nil {
			return err
		}
	}
	digest, err := ociwasm.Digest(img)
	if err != nil {
		return err
	}
	if *dir != "" {
		if err := ociwasm.WriteLayout(*dir, name+":"+*version, img); err != nil {
			return err
		}
		fmt.Fprintf(out, "OCI image layout: %s\n", *dir)
	}
	if *push != "" {
		if err := ociwasm.Push(*push, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return err
		}
		fmt.Fprintf(out, "pushed: oci://%s\n", *push)
	}
	fmt.Fprintf(out, "manifest digest sha256:%s (the WasmPlugin spec.sha256 takes the hex; the same for every tag of this file)\n", digest)
	return nil
}
