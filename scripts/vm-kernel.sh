#!/usr/bin/env bash
# Prepares the artefacts of the real-kernel V4L2 test (internal/vmtest) under
# .cache/vm, from Debian's own packages only, without installing any of them
# and without touching /boot or /lib/modules of the host:
#
#   1. resolve the package versions via apt (linux-image-amd64's dependency,
#      its headers, the matching linux-kbuild, v4l2loopback-dkms) and record
#      them in .cache/vm/versions.txt;
#   2. apt-get download them into .cache/vm/debs;
#   3. dpkg-deb -x the kernel image, headers and kbuild into .cache/vm/root and
#      rewrite the absolute paths (headers Makefile include, symlinks) to point
#      into that tree;
#   4. build v4l2loopback.ko from v4l2loopback-dkms's source against the
#      unpacked headers with the host gcc-12 (what Debian built the kernel with);
#   5. assemble .cache/vm/modules/lib/modules/<release>: only the modules that
#      VM_MODULES need (computed with modprobe --show-depends), uncompressed,
#      with modules.dep from depmod -b. This tree goes into the initramfs.
#
# Idempotent: every step leaves a stamp in .cache/vm/stamps and is skipped when
# its stamp is there; a change of the resolved versions starts over.
set -euo pipefail
cd "$(dirname "$0")/.."

VM_DIR="$PWD/.cache/vm"
# Modules (with their dependencies) that the VM can load.
# vfb: a virtual framebuffer (/dev/fb0) for the flashmark display backend.
VM_MODULES=(vivid v4l2loopback vfb)

step() { printf 'vm-kernel: %s\n' "$*"; }
die() {
	printf 'vm-kernel: error: %s\n' "$*" >&2
	exit 1
}

for tool in apt-cache apt-get dpkg-deb depmod modprobe modinfo make gcc-12 strip; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found (run scripts/deps.sh as root on Debian 12)"
done

# candidates PKG...: "name version" lines, the version apt would install.
candidates() {
	apt-cache policy "$@" 2>/dev/null | awk '/^[^ ].*:$/ {p = substr($0, 1, length($0) - 1)} /Candidate:/ {print p, $2}'
}

# resolve: sets the package names and versions from apt's current lists.
resolve() {
	IMAGE_PKG=$(apt-cache depends linux-image-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	[ -n "$IMAGE_PKG" ] || return 1
	KREL=${IMAGE_PKG#linux-image-}          # 6.1.0-NN-amd64
	KABI=${KREL%-amd64}                     # 6.1.0-NN
	HEADERS_PKG=linux-headers-$KREL
	COMMON_PKG=linux-headers-$KABI-common
	KBUILD_PKG=$(apt-cache depends "$HEADERS_PKG" 2>/dev/null |
		awk '/Depends: linux-kbuild-/ {print $2; exit}')
	[ -n "$KBUILD_PKG" ] || return 1
	LOOP_PKG=v4l2loopback-dkms
	local cands
	cands=$(candidates "$IMAGE_PKG" "$HEADERS_PKG" "$COMMON_PKG" "$KBUILD_PKG" "$LOOP_PKG")
	KVERSION=$(awk -v p="$IMAGE_PKG" '$1 == p {print $2}' <<<"$cands")
	LOOP_VERSION=$(awk -v p="$LOOP_PKG" '$1 == p {print $2}' <<<"$cands")
	[ -n "$KVERSION" ] && [ "$KVERSION" != "(none)" ] || return 1
	[ -n "$LOOP_VERSION" ] && [ "$LOOP_VERSION" != "(none)" ] || return 1
	# The headers, their common part and kbuild are built from the same
	# source as the image: all four carry the same version.
	for p in "$HEADERS_PKG" "$COMMON_PKG" "$KBUILD_PKG"; do
		v=$(awk -v p="$p" '$1 == p {print $2}' <<<"$cands")
		[ "$v" = "$KVERSION" ] || {
			echo "vm-kernel: $p candidate $v does not match $IMAGE_PKG $KVERSION" >&2
			return 1
		}
	done
	return 0
}

apt_update() {
	[ "$(id -u)" -eq 0 ] || die "apt lists are stale or missing and updating them needs root"
	step "apt-get update"
	apt-get update -q >/dev/null || die "apt-get update failed"
}

if ! resolve; then
	apt_update
	resolve || die "cannot resolve the kernel packages via apt (linux-image-amd64, its headers, linux-kbuild, v4l2loopback-dkms)"
fi

versions() {
	cat <<EOF
kernel_release=$KREL
$IMAGE_PKG=$KVERSION
$HEADERS_PKG=$KVERSION
$COMMON_PKG=$KVERSION
$KBUILD_PKG=$KVERSION
$LOOP_PKG=$LOOP_VERSION
modules=${VM_MODULES[*]}
EOF
}

mkdir -p "$VM_DIR"
if [ -f "$VM_DIR/versions.txt" ] && ! diff -q <(versions) "$VM_DIR/versions.txt" >/dev/null; then
	step "package versions changed, preparing afresh: $(versions | tr '\n' ' ')"
	rm -rf "$VM_DIR/debs" "$VM_DIR/root" "$VM_DIR/v4l2loopback" "$VM_DIR/modules" "$VM_DIR/stamps" "$VM_DIR/vmlinuz"
fi
versions >"$VM_DIR/versions.txt"
step "resolved $IMAGE_PKG $KVERSION, $KBUILD_PKG, $LOOP_PKG $LOOP_VERSION"

STAMPS="$VM_DIR/stamps"
mkdir -p "$STAMPS"
done_() { [ -f "$STAMPS/$1" ]; }
mark() { touch "$STAMPS/$1"; }

# 2. download
DEBS="$VM_DIR/debs"
if done_ download; then
	step "packages already downloaded"
else
	step "apt-get download $IMAGE_PKG $HEADERS_PKG $COMMON_PKG $KBUILD_PKG $LOOP_PKG"
	rm -rf "$DEBS"
	mkdir -p "$DEBS"
	# apt's _apt user cannot write into root-owned work trees; that only
	# yields a warning, the download proceeds unsandboxed.
	(cd "$DEBS" && apt-get download -q \
		"$IMAGE_PKG=$KVERSION" "$HEADERS_PKG=$KVERSION" "$COMMON_PKG=$KVERSION" \
		"$KBUILD_PKG=$KVERSION" "$LOOP_PKG=$LOOP_VERSION" 2>&1 | grep -v 'unsandboxed' || true)
	n=$(find "$DEBS" -name '*.deb' | wc -l)
	[ "$n" -eq 5 ] || die "apt-get download fetched $n of 5 packages into $DEBS (stale apt lists? try apt-get update)"
	mark download
fi

# 3. unpack
ROOT="$VM_DIR/root"
if done_ unpack; then
	step "kernel, headers and kbuild already unpacked in $ROOT"
else
	step "dpkg-deb -x kernel image, headers and kbuild into $ROOT"
	rm -rf "$ROOT"
	mkdir -p "$ROOT"
	for p in "$IMAGE_PKG" "$HEADERS_PKG" "$COMMON_PKG" "$KBUILD_PKG"; do
		deb=$(find "$DEBS" -name "${p}_*.deb" -print -quit)
		[ -n "$deb" ] || die "no .deb for $p in $DEBS"
		dpkg-deb -x "$deb" "$ROOT" || die "dpkg-deb -x $deb failed"
	done
	[ -f "$ROOT/boot/vmlinuz-$KREL" ] || die "$IMAGE_PKG has no boot/vmlinuz-$KREL"
	[ -d "$ROOT/lib/modules/$KREL/kernel" ] || die "$IMAGE_PKG has no lib/modules/$KREL"
	# The headers' Makefile includes the common part by absolute path.
	mk="$ROOT/usr/src/linux-headers-$KREL/Makefile"
	[ -f "$mk" ] || die "$HEADERS_PKG has no usr/src/linux-headers-$KREL/Makefile"
	sed -i "s|^include /usr/src/|include $ROOT/usr/src/|" "$mk"
	grep -q "^include $ROOT/" "$mk" || die "could not rewrite the include in $mk"
	# Absolute symlinks (lib/modules/<rel>/build and source, and any of
	# scripts/tools) must point into the unpacked tree.
	while IFS= read -r -d '' link; do
		target=$(readlink "$link")
		ln -sfn "$ROOT$target" "$link"
	done < <(find "$ROOT" -type l -lname '/*' -print0)
	mark unpack
fi
ln -sfn "root/boot/vmlinuz-$KREL" "$VM_DIR/vmlinuz"

# 4. v4l2loopback
LOOP="$VM_DIR/v4l2loopback"
LOOP_KO="$ROOT/lib/modules/$KREL/updates/v4l2loopback.ko"
if done_ v4l2loopback && [ -f "$LOOP_KO" ]; then
	step "v4l2loopback.ko already built"
else
	step "build v4l2loopback $LOOP_VERSION against linux-headers-$KREL with gcc-12"
	rm -rf "$LOOP"
	mkdir -p "$LOOP/pkg"
	deb=$(find "$DEBS" -name "${LOOP_PKG}_*.deb" -print -quit)
	[ -n "$deb" ] || die "no .deb for $LOOP_PKG in $DEBS"
	dpkg-deb -x "$deb" "$LOOP/pkg" || die "dpkg-deb -x $deb failed"
	src=$(find "$LOOP/pkg/usr/src" -mindepth 1 -maxdepth 1 -type d -name 'v4l2loopback-*' -print -quit)
	[ -n "$src" ] && [ -f "$src/v4l2loopback.c" ] || die "$LOOP_PKG has no usr/src/v4l2loopback-*/v4l2loopback.c"
	cp -r "$src" "$LOOP/build"
	# CC=gcc-12 matches CONFIG_CC_VERSION_TEXT of Debian's build.
	if ! make -C "$ROOT/usr/src/linux-headers-$KREL" M="$LOOP/build" CC=gcc-12 modules \
		>"$LOOP/build.log" 2>&1; then
		tail -n 30 "$LOOP/build.log" >&2
		die "building v4l2loopback failed (log: $LOOP/build.log)"
	fi
	vermagic=$(modinfo -F vermagic "$LOOP/build/v4l2loopback.ko")
	case "$vermagic" in
	"$KREL "*) ;;
	*) die "v4l2loopback.ko vermagic '$vermagic' does not match $KREL" ;;
	esac
	mkdir -p "$(dirname "$LOOP_KO")"
	strip --strip-debug -o "$LOOP_KO" "$LOOP/build/v4l2loopback.ko"
	depmod -b "$ROOT" "$KREL" || die "depmod -b $ROOT $KREL failed"
	rm -f "$STAMPS/modules"
	mark v4l2loopback
fi

# 5. module subset for the initramfs
MODS="$VM_DIR/modules"
if done_ modules; then
	step "module tree already assembled in $MODS"
else
	step "assemble modules for ${VM_MODULES[*]} in $MODS"
	rm -rf "$MODS"
	dst="$MODS/lib/modules/$KREL"
	mkdir -p "$dst"
	src="$ROOT/lib/modules/$KREL"
	for m in "${VM_MODULES[@]}"; do
		deps=$(modprobe -d "$ROOT" -S "$KREL" --show-depends "$m") ||
			die "modprobe --show-depends $m failed (module missing from $IMAGE_PKG?)"
		while read -r kind path _; do
			[ "$kind" = insmod ] || continue
			rel=${path#"$src"/}
			[ "$rel" != "$path" ] || die "unexpected module path $path"
			out="$dst/$rel"
			mkdir -p "$(dirname "$out")"
			case "$rel" in
			*.ko.xz) xz -dc "$path" >"${out%.xz}" ;;
			*.ko.zst) zstd -q -dc "$path" >"${out%.zst}" ;;
			*.ko.gz) gzip -dc "$path" >"${out%.gz}" ;;
			*.ko) cp "$path" "$out" ;;
			*) die "unexpected module file $path" ;;
			esac
		done <<<"$deps"
	done
	for f in modules.builtin modules.builtin.modinfo; do
		[ -f "$src/$f" ] && cp "$src/$f" "$dst/$f"
	done
	# modules.order, reduced to the modules present.
	(cd "$dst" && find . -name '*.ko' -printf '%P\n' | sort) >"$MODS/present"
	{ grep -Fxf "$MODS/present" "$src/modules.order" || true; } >"$dst/modules.order"
	rm -f "$MODS/present"
	depmod -b "$MODS" "$KREL" || die "depmod -b $MODS $KREL failed"
	for m in "${VM_MODULES[@]}"; do
		modprobe -d "$MODS" -S "$KREL" --show-depends "$m" >/dev/null ||
			die "module $m not resolvable in $MODS"
	done
	mark modules
fi

step "ready: kernel $KREL ($VM_DIR/vmlinuz), $(find "$MODS" -name '*.ko' | wc -l) modules in $MODS"
