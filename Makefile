# floodgate: a proxy-wasm rate limiter for Envoy and Istio, in Go.
#
#   make run    build plugin.wasm and serve it on 127.0.0.1:10000 in the wazero gateway,
#               configured from envoy.yaml (local mode, no Redis needed)
#   make run-redis, make run-hybrid
#               redis-server, the Redis helper and two gateways (127.0.0.1:10000 and :10001) sharing
#               it, from deploy/local/envoy-redis.yaml or envoy-hybrid.yaml; Ctrl-C stops them all
#   make check-config [CONFIGS="file..."]
#               floodgate-check on plugin configurations, Envoy bootstraps or Kubernetes manifests
#               (default: every one this repository ships)
#   make test   vet, format check, unit tests, native plugin tests and wasm end-to-end tests, then
#               a -race run of the unit and native tiers (both always run); quiet unless one fails
#   make mutate mutation testing: gremlins on algorithm/ and store/, then the curated safety
#               mutations (docs/TESTING.md); MUTATE_PKGS= runs the curated list alone
#   make bench  per-request cost of the plugin against a no-op plugin in wazero and in V8 (node),
#               compile times, sizes and the Go benchmarks; rewrites BENCHMARKS.md's make bench section
#   make test-istio  Istio's own code on deploy/istio and on the OCI image (own module; CI runs it)
#   make bench-redis  floodgate's Redis decisions against go-redis/redis_rate and
#               envoyproxy/ratelimit (bench/redis, its own module); rewrites its BENCHMARKS.md section

GO        ?= go
WASM_ENV  := GOOS=wasip1 GOARCH=wasm
PLUGIN    := plugin.wasm
NOOP      := build/noop.wasm

# Post-link optimisation with binaryen (Debian package binaryen, make deps installs it). Go 1.26's
# wasm uses bulk memory, sign extension and saturating float conversions: binaryen 108 validates
# against the MVP unless told. -g keeps the name section (function names in Envoy's trap reports
# and in the V8 profile of make bench). -O3 rather than -Oz: 1% larger, and not slower per
# request (-Oz merges similar functions behind extra indirections). The whole e2e suite and the V8
# suite run on the result.
WASM_OPT       ?= wasm-opt
WASM_OPT_FLAGS := -O3 -g --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int

.PHONY: all build noop run run-redis run-hybrid local-bins redis-server check-config test test-istio test-bench-redis check deps bench bench-redis mutate oci push clean

# The image tag. The image digest does not depend on it (nor on the command): one plugin.wasm,
# one digest, printed by both `make oci` and `make push`.
VERSION  ?= dev
TAG      ?= $(VERSION)

all: build

build: $(PLUGIN)

# The plugin is rebuilt whenever any Go file or the module files change.
# build/plugin.go.wasm is the linker's output, plugin.wasm the optimised module.
$(PLUGIN): go.mod go.sum $(shell find . -name '*.go' -not -path './e2e/*' -not -path './deploy/*' -not -path './bench/*' 2>/dev/null)
	@mkdir -p build
	@command -v $(WASM_OPT) >/dev/null || { echo "installing binaryen (wasm-opt)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binaryen; }
	$(WASM_ENV) $(GO) build -buildmode=c-shared -trimpath -o build/plugin.go.wasm ./cmd/floodgate
	$(WASM_OPT) $(WASM_OPT_FLAGS) build/plugin.go.wasm -o $@

noop: $(NOOP)

$(NOOP): go.mod go.sum $(wildcard cmd/noop-plugin/*.go internal/*/*.go)
	@mkdir -p build
	$(WASM_ENV) $(GO) build -buildmode=c-shared -trimpath -o build/noop.go.wasm ./cmd/noop-plugin
	$(WASM_OPT) $(WASM_OPT_FLAGS) build/noop.go.wasm -o $@

HOSTCALLS := build/hostcalls.wasm

$(HOSTCALLS): go.mod go.sum $(wildcard cmd/hostcalls-plugin/*.go internal/*/*.go)
	@mkdir -p build
	$(WASM_ENV) $(GO) build -buildmode=c-shared -trimpath -o build/hostcalls.go.wasm ./cmd/hostcalls-plugin
	$(WASM_OPT) $(WASM_OPT_FLAGS) build/hostcalls.go.wasm -o $@

# plugin.wasm built at BASELINE_REV: the yardstick of the compile-time target in BENCHMARKS.md.
BASELINE_REV ?= cfda2e5
BASELINE     := build/baseline-$(BASELINE_REV).wasm

$(BASELINE):
	rm -rf build/baseline-src && mkdir -p build/baseline-src
	git archive $(BASELINE_REV) | tar -x -C build/baseline-src
	cd build/baseline-src && $(WASM_ENV) $(GO) build -buildmode=c-shared -trimpath -o ../../$@ ./cmd/floodgate
	rm -rf build/baseline-src

run: $(PLUGIN)
	$(GO) run ./e2e/cmd/gateway -config envoy.yaml -wasm $(PLUGIN)

# The stack (e2e/cmd/stack) starts redis-server, the helper and two gateways, and stops them all on
# Ctrl-C; it runs built binaries, so that Ctrl-C reaches it alone.
LOCAL := build/local

run-redis: redis-server $(PLUGIN) local-bins
	$(LOCAL)/stack -config deploy/local/envoy-redis.yaml -wasm $(PLUGIN) -bin $(LOCAL)

run-hybrid: redis-server $(PLUGIN) local-bins
	$(LOCAL)/stack -config deploy/local/envoy-hybrid.yaml -wasm $(PLUGIN) -bin $(LOCAL)

local-bins:
	@mkdir -p $(LOCAL)
	$(GO) build -o $(LOCAL)/gateway ./e2e/cmd/gateway
	$(GO) build -o $(LOCAL)/redis-helper ./cmd/redis-helper
	$(GO) build -o $(LOCAL)/stack ./e2e/cmd/stack

APT_INSTALL := apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq

# redis-server, installed with apt-get (as root) when missing.
redis-server:
	@command -v redis-server >/dev/null || { echo "installing redis-server"; $(APT_INSTALL) redis-server; }

# Every configuration this repository ships, unless CONFIGS names others.
CONFIGS ?= envoy.yaml deploy/local/envoy-redis.yaml deploy/local/envoy-hybrid.yaml $(wildcard deploy/istio/*.yaml)

check-config:
	$(GO) run ./cmd/floodgate-check $(CONFIGS)

check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(WASM_ENV) $(GO) vet $$($(WASM_ENV) $(GO) list -deps -f '{{if .Module}}{{if .Module.Main}}{{.ImportPath}}{{end}}{{end}}' ./cmd/floodgate)

# Test dependencies: redis-server (the tests start their own on a free loopback port), node with
# npm (the helper is checked against the official @upstash/redis client; the V8 host runs on node),
# binaryen (wasm-opt, for the build) and curl (the README's transcripts are run as they are written).
deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v $(WASM_OPT) >/dev/null || missing="$$missing binaryen"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		$(APT_INSTALL) $$missing; \
	fi

# Both runs happen whatever the first one's result; make fails if either did.
test: deps check $(PLUGIN) $(NOOP)
	@status=0; \
	echo "FLOODGATE_WASM=$(CURDIR)/$(PLUGIN) FLOODGATE_NOOP_WASM=$(CURDIR)/$(NOOP) $(GO) test -count=1 -timeout 20m ./..."; \
	FLOODGATE_WASM=$(CURDIR)/$(PLUGIN) FLOODGATE_NOOP_WASM=$(CURDIR)/$(NOOP) $(GO) test -count=1 -timeout 20m ./... || status=1; \
	echo "$(GO) test -count=1 -race $(RACE_PKGS)"; \
	$(GO) test -count=1 -race $(RACE_PKGS) || status=1; \
	exit $$status

# The packages of the race run: everything but the wasm end-to-end tests (wazero under the race
# detector is slow) and the commands.
RACE_PKGS := ./algorithm/ ./config/ ./store/ ./plugin/ ./internal/...

# bench/redis is a module of its own (redis_rate and envoyproxy/ratelimit stay out of go.mod): a
# short run of the whole harness proves it works. CI runs it; a cold build of ratelimit takes 1-2 min.
test-bench-redis: deps
	cd bench/redis && $(GO) vet ./... && $(GO) test -count=1 ./...

# Mutation testing (docs/TESTING.md): gremlins over the packages holding the safety logic
# (MUTATE_PKGS, comma-separated; empty skips it), then the curated safety mutations of
# internal/mutate, each on a copy of the module (the working tree is never changed). Exit status 1
# when a curated mutant survives or a package's efficacy is below 90%. MUTATE_FLAGS passes more
# flags (go run ./internal/mutate -h), e.g. MUTATE_FLAGS='-run lua' or MUTATE_FLAGS=-curated=false.
GREMLINS_VERSION ?= v0.6.0
GREMLINS         := build/tools/gremlins-$(GREMLINS_VERSION)
MUTATE_PKGS      ?= ./algorithm,./store
MUTATE_FLAGS     ?=

$(GREMLINS):
	@mkdir -p build/tools/gremlins.tmp
	GOBIN=$(CURDIR)/build/tools/gremlins.tmp $(GO) install github.com/go-gremlins/gremlins/cmd/gremlins@$(GREMLINS_VERSION)
	mv build/tools/gremlins.tmp/gremlins $@ && rmdir build/tools/gremlins.tmp

mutate: redis-server $(GREMLINS)
	$(GO) run ./internal/mutate -gremlins $(CURDIR)/$(GREMLINS) -pkgs '$(MUTATE_PKGS)' $(MUTATE_FLAGS)

# deploy/istio/istiotest is a module of its own (istio.io/istio is far too heavy for go.mod): cold,
# about 11 CPU-minutes of compiling (23 min on a busy 2-core machine); warm, under a minute.
# make test leaves it out; .ci/run runs it. See docs/istio-tests.md.
ISTIOTEST := deploy/istio/istiotest

test-istio: $(PLUGIN)
	cd $(ISTIOTEST) && $(GO) vet ./...
	cd $(ISTIOTEST) && FLOODGATE_WASM=$(CURDIR)/$(PLUGIN) $(GO) test -count=1 -timeout 30m ./...

# e2e/cmd/enginebench measures and rewrites the generated section of BENCHMARKS.md, every table of
# make bench: per request in wazero and V8 (interleaved rounds; the hybrid case against a
# redis-server and Redis helper it starts on loopback), compile times, sizes, memory, and the Go
# benchmarks of algorithm, store, e2e and internal/redishelper, which it runs with go test and
# parses. About 12 minutes on a busy 2-core machine.
bench: deps $(PLUGIN) $(NOOP) $(HOSTCALLS) $(BASELINE)
	$(GO) run ./e2e/cmd/enginebench -plugin $(PLUGIN) -unoptimized build/plugin.go.wasm -noop $(NOOP) -hostcalls $(HOSTCALLS) \
		-baseline $(BASELINE) -baseline-name "plugin.wasm at $(BASELINE_REV)" -report BENCHMARKS.md

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
