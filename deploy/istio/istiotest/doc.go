// Package istiotest runs Istio's own code on what floodgate ships for Istio: the manifests in
// deploy/istio (parsed and validated as istioctl and the admission webhook do, translated by
// istiod into an ingress gateway's listeners and ECDS configuration) and the OCI image of
// `make oci` / `make push` (fetched and verified by the gateway agent's wasm cache).
//
// It is a module of its own because istio.io/istio is far too heavy for floodgate's go.mod;
// `make test-istio` runs it. It has no code outside its tests.
package istiotest
