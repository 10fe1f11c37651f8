#!/usr/bin/env bash
# Builds image-oci (assembles the kfop OCI image offline with go-containerregistry) from the
# pinned Go module graph into ${KFOP_CACHE:-$HOME/.cache/kfop}/image-oci/<hash>/, once.
# Prints the binary's path on its last line.
set -euo pipefail
cd "$(dirname "$0")"
WANT=$(cat go.mod go.sum main.go | sha256sum | cut -d' ' -f1)
OUT="${KFOP_CACHE:-$HOME/.cache/kfop}/image-oci/${WANT:0:16}"
if [ -x "$OUT/image-oci" ]; then
  echo "$OUT/image-oci"
  exit 0
fi
command -v go >/dev/null || { echo "build.sh: Go is needed to build image-oci (https://go.dev/dl)" >&2; exit 1; }
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
mkdir -p "$OUT"
echo "building image-oci into $OUT" >&2
# Built beside the target and renamed, so a concurrent or interrupted build leaves no partial binary.
go build -trimpath -ldflags "-s -w" -o "$OUT/image-oci.$$" . >&2
mv -f "$OUT/image-oci.$$" "$OUT/image-oci"
echo "$OUT/image-oci"
