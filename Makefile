# glint build. `make run` runs the main job, `make test` runs every test.
# Both call `make deps` first, which installs what a fresh Debian 12 machine lacks.

SHELL := /bin/bash
GO ?= go
GOBIN := $(shell $(GO) env GOPATH)/bin
export PATH := $(PATH):$(GOBIN)

BIN := bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/glintdev/glint/internal/buildinfo.Version=$(VERSION)
CMDS := glintd glintctl glint-hub

.PHONY: all deps build build-arm64 test unit test-arm64 test-v4l2 test-systemd bench lint run clean

all: build

deps:
	@scripts/deps.sh

build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# ARM64 cross build, cgo included (Debian's gcc-aarch64-linux-gnu).
build-arm64:
	@mkdir -p $(BIN)/arm64
	CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc \
		$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/arm64/ ./cmd/...

test: deps lint unit test-arm64 test-v4l2 test-systemd
	@echo "make test: all suites passed"

# Unit and integration tests on the host, with the race detector (the
# real-kernel package runs in test-v4l2, not twice).
unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /internal/vmtest$$)

# The capture package's unit tests, built for arm64 (cgo on) and run under qemu-user.
test-arm64: build-arm64
	@mkdir -p $(BIN)/arm64
	CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc \
		$(GO) test -c -o $(BIN)/arm64/capture.test ./capture
	cd capture && qemu-aarch64-static -L /usr/aarch64-linux-gnu ../$(BIN)/arm64/capture.test -test.count=1 -test.v \
		| grep -E '^(--- |PASS|FAIL|ok)' ; test $${PIPESTATUS[0]} -eq 0
	@# The daemon itself, linked with cgo against the arm64 libc, starts under qemu-user.
	file $(BIN)/arm64/glintd | grep -q 'ARM aarch64.*dynamically linked'
	qemu-aarch64-static -L /usr/aarch64-linux-gnu $(BIN)/arm64/glintd version

# Capture tests inside Debian's own kernel under qemu-system (TCG): vivid and v4l2loopback.
test-v4l2:
	$(GO) test -count=1 -v -timeout 10m ./internal/vmtest

# systemd-analyze verify on the unit files.
test-systemd:
	$(GO) test -count=1 ./systemd

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./capture

lint:
	@files=$$(gofmt -l $$(find . -name '*.go' -not -path './.cache/*')); \
		if [ -n "$$files" ]; then echo "gofmt needed:"; echo "$$files"; exit 1; fi
	$(GO) vet ./...
	staticcheck ./...

run: deps build
	scripts/run.sh

clean:
	rm -rf $(BIN) .cache/build
