// Command floodgate-oci packages plugin.wasm as an OCI image for Istio's WasmPlugin (see
// internal/ociwasm for the format), or with -helper the Redis helper's static binary as a
// minimal Linux image, into an OCI image layout, and optionally pushes it. It prints the
// manifest digest (the WasmPlugin's sha256 field). No Docker needed.
//
//	floodgate-oci -wasm plugin.wasm -layout build/oci -version v0.1.0
//	floodgate-oci -wasm plugin.wasm -push registry.example.com/floodgate:v0.1.0
package main

import (
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/floodgate-proxy/floodgate/internal/ociwasm"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	wasmPath := flag.String("wasm", "plugin.wasm", "the module")
	helperPath := flag.String("helper", "", "package instead the static Linux binary of the Redis helper")
	arch := flag.String("arch", "amd64", "architecture of -helper")
	dir := flag.String("layout", "", "write an OCI image layout here")
	push := flag.String("push", "", "push to this reference (registry/repository:tag), with the docker config's credentials")
	version := flag.String("version", "dev", "org.opencontainers.image.version")
	source := flag.String("source", "https://github.com/floodgate-proxy/floodgate", "org.opencontainers.image.source")
	revision := flag.String("revision", "", "org.opencontainers.image.revision (git commit)")
	flag.Parse()

	ann := ociwasm.Annotations{Version: *version, Source: *source, Revision: *revision}
	var img v1.Image
	name := "floodgate"
	if *helperPath != "" {
		binary, err := os.ReadFile(*helperPath)
		if err != nil {
			log.Fatal(err)
		}
		name = "redis-helper"
		if img, err = ociwasm.BinaryImage(name, binary, *arch, ann); err != nil {
			log.Fatal(err)
		}
	} else {
		module, err := os.ReadFile(*wasmPath)
		if err != nil {
			log.Fatal(err)
		}
		if img, err = ociwasm.Image(module, ann); err != nil {
			log.Fatal(err)
		}
	}
	digest, err := ociwasm.Digest(img)
	if err != nil {
		log.Fatal(err)
	}
	if *dir != "" {
		if err := ociwasm.WriteLayout(*dir, name+":"+*version, img); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("OCI image layout: %s\n", *dir)
	}
	if *push != "" {
		if err := ociwasm.Push(*push, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("pushed: oci://%s\n", *push)
	}
	fmt.Printf("manifest digest sha256:%s (the WasmPlugin spec.sha256 takes the hex)\n", digest)
}
