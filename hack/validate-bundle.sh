#!/usr/bin/env bash
# Validates the OLM bundle with operator-framework's own validators (hack/bundle-validate):
# prints every error and warning and exits non-zero if there is any.
# Usage: hack/validate-bundle.sh [bundle-dir]   (default: the repo's bundle/, wherever this is run from)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${1:-$ROOT/bundle}
BIN=$("$ROOT/hack/build-go-tool.sh" bundle-validate | tail -n1)
# The Kubernetes version kfop's tests run against: removed APIs are errors from it on.
exec "$BIN" -k8s-version "$(cat "$ROOT/hack/control-plane/VERSION")" "$DIR"
