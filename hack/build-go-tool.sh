#!/usr/bin/env bash
# Builds one of the Go tools under hack/ (krusty-bench, image-oci, bundle-validate: each a Go
# module whose main package is its main.go) from its pinned module graph, once, into
# ${KFOP_CACHE:-$HOME/.cache/kfop}/<tool>/<hash of go.mod go.sum main.go>/<tool>, so a changed
# module or program is rebuilt. Prints the binary's path on its last line.
# Usage: hack/build-go-tool.sh TOOL
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 TOOL" >&2; exit 2; }
TOOL=$1
cd "$(dirname "$0")/$TOOL"
SUM=$(cat go.mod go.sum main.go | sha256sum | cut -d' ' -f1)
OUT="${KFOP_CACHE:-$HOME/.cache/kfop}/$TOOL/${SUM:0:16}"
BIN="$OUT/$TOOL"
if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null || { echo "build-go-tool.sh: Go is needed to build $TOOL (https://go.dev/dl)" >&2; exit 1; }
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
mkdir -p "$OUT"
echo "building $TOOL into $OUT" >&2
# Built beside the target and renamed, so a concurrent or interrupted build leaves no partial binary.
go build -trimpath -ldflags "-s -w" -o "$BIN.$$" . >&2
mv -f "$BIN.$$" "$BIN"
echo "$BIN"
