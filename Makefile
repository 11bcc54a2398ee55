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

.PHONY: all deps build build-arm64 test unit test-arm64 test-v4l2 test-systemd bench lint run clean test-faults bench-sync test-arm64-inference bench-inference

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

test: deps lint unit test-arm64 test-v4l2 test-systemd test-faults test-arm64-inference
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

# Tests inside Debian's own kernel under qemu-system (TCG): capture with vivid
# and v4l2loopback, the device guard, the framebuffer display with vfb.
test-v4l2:
	$(GO) test -count=1 -v -timeout 10m ./internal/vmtest

# systemd-analyze verify on the unit files.
test-systemd:
	$(GO) test -count=1 ./systemd

bench: bench-sync bench-inference bench-sim
	$(GO) test -run '^$$' -bench . -benchmem ./capture ./flashmark

lint:
	@files=$$(gofmt -l $$(find . -name '*.go' -not -path './.cache/*')); \
		if [ -n "$$files" ]; then echo "gofmt needed:"; echo "$$files"; exit 1; fi
	$(GO) vet ./...
	staticcheck ./...

# The demo (scripts/run.sh): glint-hub and glintd on a simulated kiosk under
# /tmp/glint-demo, a device provisioned with a claim token, one enrolment, a
# bona fide session and two attacks (print, replay) with their verdicts; then
# both daemons keep serving until Ctrl-C.
run: deps build
	scripts/run.sh

clean:
	rm -rf $(BIN) .cache/build

# Fault injection on the wire (sync/faults, build tag "faults"): kill -9 of
# the publisher (50 trials), broker restart, kill -9 of the hub, 10,000
# results offline. Each scenario prints its "faults: scenario=..." line.
# The whole log goes to .cache/test-faults.log; on failure its failing parts
# (race reports and messages from non-test files included) are printed too.
test-faults:
	@mkdir -p .cache
	@$(GO) test -tags faults -race -count=1 -v -timeout 8m ./sync/faults > .cache/test-faults.log 2>&1; rc=$$?; \
		grep -E '^(--- |faults:|PASS|FAIL|ok|panic)|_test.go' .cache/test-faults.log; \
		if [ $$rc -ne 0 ]; then echo "test-faults: exit $$rc; failures from .cache/test-faults.log:"; \
			grep -n -B2 -A30 -E 'DATA RACE|race detected|^--- FAIL|^panic' .cache/test-faults.log | head -400; fi; \
		exit $$rc

# Result, envelope, outbox and hub-ingest benchmarks (docs/performance.md).
bench-sync:
	$(GO) test -run '^$$' -bench . -benchmem ./result ./sync/envelope ./sync/outbox
	$(GO) test -run '^$$' -bench 'Ingest|Latency' -benchtime 1x ./hub

# ARM64 smoke test of the on-device models: the inference tests built for
# arm64 load models/lib/arm64's ONNX Runtime and detect a face under
# qemu-user, with the prefix make deps prepares (.cache/qemu-arm64: an ARM
# /proc/cpuinfo for ORT's CPU detection, see scripts/models.sh).
test-arm64-inference:
	@mkdir -p $(BIN)/arm64
	CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc \
		$(GO) test -c -o $(BIN)/arm64/inference.test ./inference
	cd inference && CI=true qemu-aarch64-static -L ../.cache/qemu-arm64 ../$(BIN)/arm64/inference.test \
		-test.count=1 -test.v -test.run 'TestDetectRegistryPhotos/skimage|TestCompareRegistryFaces'

# Per-model FP32 vs INT8 at 1 and 2 threads, one tracking step at 640x480,
# embedding (docs/models.md has the table).
bench-inference:
	$(GO) test -run '^$$' -bench . -benchtime 50x ./inference

# Liveness evaluation on the simulator (ISO/IEC 30107-3 report in
# .cache/eval): the registry photos, plus ../shared/faces when it exists.
# EVAL_N attempts per presentation kind. docs/liveness.md has the published
# run (registry photos only, 300 bona fide, 150 per species) and its command.
EVAL_N ?= 100
.PHONY: eval bench-sim
eval: deps
	$(GO) run ./cmd/glintctl eval --faces .cache/faces \
		$$(test -d ../shared/faces && echo --faces ../shared/faces) \
		--seed 1 --bona-fide $(EVAL_N) --attacks-per-species $(EVAL_N) \
		--species print,screen,replay,injection,relight,mask --variants relight-33ms \
		--out .cache/eval
	@cat .cache/eval/report.md

# Simulator render benchmark (docs/sim.md): frames/s at 640x480 on one core.
bench-sim:
	$(GO) test -run '^$$' -bench . -cpu 1 ./sim/...
