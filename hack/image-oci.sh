#!/usr/bin/env bash
# Assembles the kfop container image offline from a built binary: an OCI image layout as a tar
# archive (load it with `podman load -i OUT` or `skopeo copy oci-archive:OUT …`). The binary's
# shared libraries and loader, as ldd resolves them here, go into the image with it.
# Usage: hack/image-oci.sh BINARY OUT
# The tag is $KFOP_IMAGE_TAG, else ghcr.io/kfop/kfop:<the version `BINARY version` prints>;
# file times are $SOURCE_DATE_EPOCH, else 0, so the same binary gives the same digest.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 BINARY OUT" >&2; exit 2; }
BINARY=$1
OUT=$2
[ -f "$BINARY" ] && [ -x "$BINARY" ] || { echo "image-oci.sh: $BINARY is not an executable file" >&2; exit 1; }
TOOL=$("$(dirname "$0")/build-go-tool.sh" image-oci | tail -n1)

# `ldd` prints `name => /path (0x…)` per library and `/path/to/loader (0x…)` for the loader.
LDD_STATUS=0
LDD=$(ldd "$BINARY" 2>&1) || LDD_STATUS=$?
if grep -qE 'not a dynamic executable|statically linked' <<<"$LDD"; then
  echo "image-oci.sh: $BINARY is statically linked; this script copies the libraries of a dynamically linked binary (a static one needs none: run $TOOL without --lib)" >&2
  exit 1
fi
[ "$LDD_STATUS" = 0 ] || { echo "image-oci.sh: ldd $BINARY failed: $LDD" >&2; exit 1; }
if grep -q 'not found' <<<"$LDD"; then
  echo "image-oci.sh: ldd cannot resolve every library of $BINARY:" >&2
  grep 'not found' <<<"$LDD" >&2
  exit 1
fi
LIBS=()
while read -r lib; do
  LIBS+=(--lib "$lib")
done < <(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$LDD" | sort -u)
[ ${#LIBS[@]} -gt 0 ] || { echo "image-oci.sh: ldd listed no libraries for $BINARY:" >&2; echo "$LDD" >&2; exit 1; }

VERSION=$("$BINARY" version | awk 'NR == 1 && $1 == "kfop" {print $2}')
[ -n "$VERSION" ] || { echo "image-oci.sh: \`$BINARY version\` did not print \`kfop VERSION\`" >&2; exit 1; }
TAG=${KFOP_IMAGE_TAG:-ghcr.io/kfop/kfop:$VERSION}
mkdir -p "$(dirname "$OUT")"
"$TOOL" --binary "$BINARY" --out "$OUT" --tag "$TAG" --version "$VERSION" "${LIBS[@]}"
