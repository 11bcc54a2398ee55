#!/usr/bin/env bash
# Fetches the face photos the project's own tests and `make eval` use, from
# registry packages only, into .cache/faces/ (never committed):
#
#   .cache/faces/face-api/sample*.jpg  demo photos of the npm package @vladmandic/face-api
#   .cache/faces/skimage/astronaut.png from Debian's python3-skimage
#   .cache/faces/opencv/messi5.jpg     from Debian's opencv-doc
#
# Packages are fetched, not installed: `npm pack` (no install scripts run) and
# `apt-get download` + `dpkg-deb -x`. Versions and the npm integrity are pinned;
# apt verifies the .deb against the signed archive index. Idempotent: a step
# whose output is present is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf 'faces: %s\n' "$*"; }
# first_match GLOB: the first existing path GLOB matches (empty: none).
first_match() {
	local m
	for m in $1; do
		[ -e "$m" ] && { printf '%s\n' "$m"; return; }
	done
	return 0
}

FACEAPI_VERSION=1.7.15
FACEAPI_INTEGRITY='sha512-WDMmK3CfNLo8jylWqMoQgf4nIst3M0fzx1dnac96wv/dvMTN4DxC/Pq1DGtduDk1lktCamQ3MIDXFnvrdHTXDw=='
SKIMAGE_DEB='python3-skimage=0.19.3-8'
OPENCV_DEB='opencv-doc=4.6.0+dfsg-12'

CACHE=.cache/faces
DL=.cache/faces-dl
mkdir -p "$CACHE" "$DL"

# npm: @vladmandic/face-api demo/sample*.jpg
if compgen -G "$CACHE/face-api/sample*.jpg" >/dev/null; then
	step "face-api $FACEAPI_VERSION samples present"
else
	step "npm pack @vladmandic/face-api@$FACEAPI_VERSION"
	command -v npm >/dev/null || { echo "faces: npm (the machine's Node.js) not found" >&2; exit 1; }
	tgz="$DL/vladmandic-face-api-$FACEAPI_VERSION.tgz"
	if [ ! -f "$tgz" ]; then
		# npm pack checks the tarball against the registry's integrity; we
		# check that integrity against the pinned one.
		got=$(cd "$DL" && npm pack --silent --json "@vladmandic/face-api@$FACEAPI_VERSION" 2>/dev/null |
			node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s)[0];console.log(j.integrity+" "+j.filename)})')
		integrity=${got%% *}
		file=${got#* }
		if [ "$integrity" != "$FACEAPI_INTEGRITY" ]; then
			echo "faces: @vladmandic/face-api@$FACEAPI_VERSION integrity $integrity, want $FACEAPI_INTEGRITY" >&2
			rm -f "$DL/$file"
			exit 1
		fi
		[ "$DL/$file" = "$tgz" ] || mv "$DL/$file" "$tgz"
	fi
	step "extract demo/sample*.jpg"
	tmp=$(mktemp -d)
	tar -xzf "$tgz" -C "$tmp" --wildcards 'package/demo/sample*.jpg'
	mkdir -p "$CACHE/face-api"
	mv "$tmp"/package/demo/sample*.jpg "$CACHE/face-api/"
	rm -rf "$tmp"
fi

# Debian: one file out of a .deb, without installing it.
deb_file() { # pin, path inside the package, destination
	local pin=$1 inner=$2 dest=$3
	if [ -f "$dest" ]; then
		step "$(basename "$dest") present"
		return
	fi
	local name=${pin%%=*} ver=${pin#*=}
	local deb
	# First match without a pipe into head: under pipefail the writer's
	# SIGPIPE would fail the assignment when several match.
	deb=$(first_match "$DL/${name}_${ver//:/%3a}_*.deb")
	if [ -z "$deb" ]; then
		step "apt-get download $pin"
		if ! (cd "$DL" && apt-get download -q "$pin" >/dev/null 2>&1); then
			apt-get update -q >/dev/null
			(cd "$DL" && apt-get download -q "$pin")
		fi
		deb=$(first_match "$DL/${name}_*.deb")
	fi
	step "extract $inner from $(basename "$deb")"
	local tmp
	tmp=$(mktemp -d)
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" "./$inner"
	mkdir -p "$(dirname "$dest")"
	mv "$tmp/$inner" "$dest"
	rm -rf "$tmp"
}

deb_file "$SKIMAGE_DEB" usr/lib/python3/dist-packages/skimage/data/astronaut.png "$CACHE/skimage/astronaut.png"
deb_file "$OPENCV_DEB" usr/share/doc/opencv-doc/examples/data/messi5.jpg "$CACHE/opencv/messi5.jpg"

# The .debs are large (opencv-doc ~95 MB); keep only the photos.
rm -rf "$DL"/*.deb
step "photos in $CACHE: $(find "$CACHE" -type f | wc -l)"
