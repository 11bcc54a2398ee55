#!/usr/bin/env bash
# Regenerates onnx.pb.go from the onnx.proto that Debian's python3-onnx
# package ships (ONNX 1.12: IR version 8, opsets up to 17), with Debian's
# protoc and protoc-gen-go at the version of google.golang.org/protobuf in
# go.mod. Only the generated file is committed.
set -euo pipefail
cd "$(dirname "$0")"
PROTOBUF_VERSION=$(cd ../../.. && go list -m -f '{{.Version}}' google.golang.org/protobuf)
command -v protoc >/dev/null || { echo "gen: protoc missing (apt-get install protobuf-compiler)" >&2; exit 1; }
GOBIN=$(go env GOPATH)/bin
go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOBUF_VERSION"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download python3-onnx >/dev/null 2>&1)
dpkg-deb -x "$tmp"/python3-onnx_*.deb "$tmp/x"
cp "$tmp/x/usr/lib/python3/dist-packages/onnx/onnx.proto" "$tmp/onnx.proto"
protoc --plugin=protoc-gen-go="$GOBIN/protoc-gen-go" -I "$tmp" \
	--go_out=. --go_opt=paths=source_relative \
	--go_opt=Monnx.proto=github.com/glintdev/glint/inference/internal/onnxpb \
	"$tmp/onnx.proto"
echo "gen: onnx.pb.go from $(basename "$tmp"/python3-onnx_*.deb)"
