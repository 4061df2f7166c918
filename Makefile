# floodgate: a proxy-wasm rate limiter for Envoy and Istio, in Go.
#
#   make run    build plugin.wasm and serve it on 127.0.0.1:10000 in the wazero gateway,
#               configured from envoy.yaml (local mode, no Redis needed)
#   make test   vet, format check, unit tests, native plugin tests and wasm end-to-end tests
#   make bench  per-request cost of the plugin against a no-op plugin, in the same host
#   make test-istio  Istio's own code on deploy/istio and on the OCI image (own module; CI runs it)
#   make bench-redis  floodgate's Redis decisions against go-redis/redis_rate and
#               envoyproxy/ratelimit (bench/redis, its own module); rewrites its BENCHMARKS.md section

GO        ?= go
WASM_ENV  := GOOS=wasip1 GOARCH=wasm
PLUGIN    := plugin.wasm
NOOP      := build/noop.wasm

.PHONY: all build noop run test test-istio test-bench-redis check deps bench bench-redis oci push clean

# The image tag. The image digest does not depend on it (nor on the command): one plugin.wasm,
# one digest, printed by both `make oci` and `make push`.
VERSION  ?= dev
TAG      ?= $(VERSION)

all: build

build: $(PLUGIN)

# The plugin is rebuilt whenever any Go file or the module files change.
$(PLUGIN): go.mod go.sum $(shell find . -name '*.go' -not -path './e2e/*' -not -path './deploy/*' -not -path './bench/*' 2>/dev/null)
	$(WASM_ENV) $(GO) build -buildmode=c-shared -trimpath -o $@ ./cmd/floodgate

noop: $(NOOP)

$(NOOP): go.mod go.sum $(wildcard cmd/noop-plugin/*.go internal/*/*.go)
	@mkdir -p build
	$(WASM_ENV) $(GO) build -buildmode=c-shared -trimpath -o $@ ./cmd/noop-plugin

run: $(PLUGIN)
	$(GO) run ./e2e/cmd/gateway -config envoy.yaml -wasm $(PLUGIN)

check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(WASM_ENV) $(GO) vet ./cmd/... ./internal/... ./plugin/... ./algorithm/... ./config/... ./store/...

# Test dependencies: redis-server (the tests start their own on a free loopback port), and node
# with npm (the helper is checked against the official @upstash/redis client).
deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

test: deps check $(PLUGIN) $(NOOP)
	FLOODGATE_WASM=$(CURDIR)/$(PLUGIN) FLOODGATE_NOOP_WASM=$(CURDIR)/$(NOOP) $(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -race ./algorithm/ ./config/ ./store/ ./plugin/ ./internal/...

# bench/redis is a module of its own (redis_rate and envoyproxy/ratelimit stay out of go.mod): a
# short run of the whole harness proves it works. CI runs it; a cold build of ratelimit takes 1-2 min.
test-bench-redis: deps
	cd bench/redis && $(GO) vet ./... && $(GO) test -count=1 ./...

# deploy/istio/istiotest is a module of its own (istio.io/istio is far too heavy for go.mod): cold,
# about 11 CPU-minutes of compiling (23 min on a busy 2-core machine); warm, under a minute.
# make test leaves it out; .ci/run runs it. See docs/istio-tests.md.
ISTIOTEST := deploy/istio/istiotest

test-istio: $(PLUGIN)
	cd $(ISTIOTEST) && $(GO) vet ./...
	cd $(ISTIOTEST) && FLOODGATE_WASM=$(CURDIR)/$(PLUGIN) $(GO) test -count=1 -timeout 30m ./...

bench: $(PLUGIN) $(NOOP)
	FLOODGATE_WASM=$(CURDIR)/$(PLUGIN) FLOODGATE_NOOP_WASM=$(CURDIR)/$(NOOP) $(GO) test -run '^$$' -bench . -benchmem ./algorithm/ ./store/ ./e2e/

# About four minutes on 2 cores (plus a first build of envoyproxy/ratelimit); BENCH_REDIS_FLAGS
# resizes it (see cd bench/redis && go run . -h).
bench-redis: deps
	cd bench/redis && $(GO) run . -update ../../BENCHMARKS.md $(BENCH_REDIS_FLAGS)

# OCI image for Istio's WasmPlugin (no Docker): an image layout in build/oci, or a push.
HELPER := build/redis-helper

$(HELPER): go.mod go.sum $(wildcard cmd/redis-helper/*.go internal/redishelper/*.go)
	@mkdir -p build
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -o $@ ./cmd/redis-helper

oci: $(PLUGIN) $(HELPER)
	$(GO) run ./cmd/floodgate-oci -wasm $(PLUGIN) -layout build/oci/floodgate -version $(TAG)
	$(GO) run ./cmd/floodgate-oci -helper $(HELPER) -layout build/oci/redis-helper -version $(TAG)

push: $(PLUGIN) $(HELPER)
	@test -n "$(REGISTRY)" || { echo "usage: make push REGISTRY=registry.example.com/team TAG=v0.1.0"; exit 2; }
	$(GO) run ./cmd/floodgate-oci -wasm $(PLUGIN) -push $(REGISTRY)/floodgate:$(TAG) -version $(TAG)
	$(GO) run ./cmd/floodgate-oci -helper $(HELPER) -push $(REGISTRY)/redis-helper:$(TAG) -version $(TAG)

clean:
	rm -rf $(PLUGIN) build
