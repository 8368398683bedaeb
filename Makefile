# Edgeward: run `make` for the list of targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
BIN      := bin/edgeward
ARCH     ?= $(shell $(GO) env GOARCH)

# The pinned BPF toolchain: Debian 12's clang-19. `make check` fails when the
# committed objects differ from what it builds.
BPF_CLANG         ?= clang-19
BPF_STRIP         ?= llvm-strip-19
BPF_CLANG_VERSION := 19.1.7
BPF_CFLAGS        := -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu
export BPF_CLANG BPF_STRIP BPF_CFLAGS

# Tests may not skip for lack of privilege when run through make.
export EDGEWARD_STRICT := 1

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## install missing system packages with apt-get (as root)
	@scripts/deps.sh

.PHONY: generate
generate: ## rebuild the BPF objects (bpf2go) with the pinned clang
	@scripts/deps.sh build
	@$(BPF_CLANG) --version | grep -q "version $(BPF_CLANG_VERSION)" || \
		{ echo "generate: need $(BPF_CLANG) $(BPF_CLANG_VERSION), found: $$($(BPF_CLANG) --version | head -1)"; exit 1; }
	$(GO) generate ./loader/

.PHONY: build
build: ## build bin/edgeward (needs no C compiler)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/edgeward

.PHONY: package
package: ## build bin/edgeward_<version>_<arch>.deb with dpkg-deb (ARCH=arm64 for arm64)
	@VERSION=$(VERSION) ARCH=$(ARCH) GO=$(GO) OUT=bin scripts/package.sh

.PHONY: test
test: deps build ## run every test, as root; fails on any skipped test
	@scripts/test.sh

.PHONY: test-service
test-service: ## run the packaged unit under systemd in a container (systemd-nspawn, root)
	@scripts/test-service.sh

.PHONY: test-kernels
test-kernels: ## run the kernel tests in qemu on Debian's 6.1 and 6.12 kernels and here (root)
	@scripts/test-kernels.sh

.PHONY: demo
demo: deps build ## run the enforcer on real traffic in a network sandbox
	$(GO) run ./test/demo -bin $(BIN)

.PHONY: bench
bench: deps build ## measure the data plane against its floor; results in bench/
	@scripts/bench.sh

.PHONY: format
format: ## format Go and C sources
	gofmt -w $$(git ls-files '*.go')

.PHONY: lint
lint: ## vet and check formatting
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: check
check: lint ## lint; check metrics, dashboard and alerts; cross-build for arm64; prove the BPF objects match the sources
	$(GO) test -count=1 ./deploy/
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build ./...
	@scripts/check-generated.sh

.PHONY: clean
clean: ## remove build output
	rm -rf bin
