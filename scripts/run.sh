#!/usr/bin/env bash
# `make run`: starts glintd with the demo configuration (configs/demo.yaml):
# a file camera replaying frames from .cache/demo/frames, the local API on
# /tmp/glint-demo/glintd.sock. Ctrl-C stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."

frames=.cache/demo/frames
if ! compgen -G "$frames/*.jpg" >/dev/null && ! compgen -G "$frames/*.png" >/dev/null; then
	echo "run: writing demo frames to $frames"
	bin/glintctl camera testpattern --out "$frames" --frames 50
fi
mkdir -p /tmp/glint-demo

cat <<'HINT'
run: starting glintd with configs/demo.yaml (Ctrl-C stops it)
run: in another shell:
       curl --unix-socket /tmp/glint-demo/glintd.sock http://glintd/healthz
       curl --unix-socket /tmp/glint-demo/glintd.sock http://glintd/metrics
HINT
exec bin/glintd --config configs/demo.yaml
