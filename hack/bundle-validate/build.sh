#!/usr/bin/env bash
# Builds bundle-validate (operator-framework's OLM bundle validators, see main.go) from the pinned
# Go module graph into ${KFOP_CACHE:-$HOME/.cache/kfop}/bundle-validate/<hash of its sources>/, once.
# Prints the binary's path on its last line.
set -euo pipefail
cd "$(dirname "$0")"
# The directory is named after what the binary is built from, so a changed go.mod or main.go rebuilds it.
SUM=$(cat go.mod go.sum main.go | sha256sum | cut -d' ' -f1)
OUT="${KFOP_CACHE:-$HOME/.cache/kfop}/bundle-validate/$SUM"
BIN="$OUT/bundle-validate"
if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null || { echo "build.sh: Go is needed to build bundle-validate (https://go.dev/dl)" >&2; exit 1; }
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
mkdir -p "$OUT"
echo "building bundle-validate into $OUT" >&2
# Build next to the final name and rename, so an interrupted build never leaves a binary behind.
go build -trimpath -ldflags "-s -w" -o "$BIN.tmp" . >&2
mv "$BIN.tmp" "$BIN"
echo "$BIN"
