#!/usr/bin/env bash
# Installs everything the build and the tests need on a fresh Debian 12 machine,
# idempotently: apt-get only for packages that are missing, Go tools pinned,
# and the real-kernel test artefacts (kernel, modules, v4l2loopback) prepared
# under .cache/ only when they are not there yet.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf 'deps: %s\n' "$*"; }

# Debian packages, by name. Later issues add to this list.
APT_PACKAGES=(
	make gcc libc6-dev git ca-certificates file
	# ARM64 cross build and qemu-user test run
	gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
	# arm64 ONNX Runtime (libonnxruntime.so.1) under qemu-user needs libstdc++
	libstdc++6-arm64-cross
	# real-kernel V4L2 tests
	qemu-system-x86 busybox-static kmod cpio xz-utils zstd
	# (Debian's kernel, headers and linux-kbuild are unpacked, not installed, by
	# scripts/vm-kernel.sh; v4l2loopback is built with gcc-12 against them, and
	# kbuild's prebuilt tools need libelf1 and libssl3)
	gcc-12 binutils libelf1 libssl3
	# systemd unit verification
	systemd
	# sync/hub integration tests: the machine's Mosquitto on 127.0.0.1:1883 plus
	# private instances the tests start (mosquitto, mosquitto_passwd), and
	# PostgreSQL on 127.0.0.1:5432 (database "test", role root, trust auth)
	mosquitto postgresql
	# device/ and hub/ tests: the TPM 2.0 reference simulator
	# (github.com/google/go-tpm-tools/simulator) is compiled with cgo
	# against the system OpenSSL (headers and libcrypto)
	libssl-dev
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if ((${#missing[@]})); then
	step "apt-get install ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: need root to install: ${missing[*]}" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
else
	step "Debian packages present"
fi

# Go tools, pinned.
GOBIN="$(go env GOPATH)/bin"
STATICCHECK_VERSION=v0.8.2
if ! "$GOBIN/staticcheck" -version 2>/dev/null | grep -q "${STATICCHECK_VERSION#v}"; then
	step "go install staticcheck@$STATICCHECK_VERSION"
	go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
else
	step "staticcheck $STATICCHECK_VERSION present"
fi

step "go mod download"
go mod download

# Real-kernel V4L2 test artefacts (Debian kernel, modules, v4l2loopback).
scripts/vm-kernel.sh

# Face photos from registry packages (npm @vladmandic/face-api samples,
# Debian python3-skimage astronaut.png, opencv-doc messi5.jpg) into
# .cache/faces: the simulator's and the models' tests and `make eval`.
scripts/faces.sh

# On-device models: ONNX Runtime library and TFJS models from npm, converted
# (and quantized) into models/; the TFJS reference for the parity tests.
scripts/models.sh

step "done"
