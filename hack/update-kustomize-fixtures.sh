#!/usr/bin/env bash
# Regenerates tests/fixtures/kustomize/*/expected.yaml with `kubectl kustomize`, the oracle the
# renderer is tested against. Cases with an expected-error.txt are error cases and are left alone.
# A case that kfop accepts on purpose and kubectl refuses (a kfctl-era input, see
# docs/rendering.md) holds the same input in kustomize v5's terms in kubectl/: its output is the
# expected one.
set -euo pipefail
cd "$(dirname "$0")/../tests/fixtures/kustomize"
command -v kubectl >/dev/null || { echo "kubectl is needed" >&2; exit 1; }
kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: /kustomize /p' >&2
for dir in */; do
  dir=${dir%/}
  [ -f "$dir/expected-error.txt" ] && continue
  if [ -d "$dir/kubectl" ]; then
    kubectl kustomize --load-restrictor LoadRestrictionsNone "$dir/kubectl" > "$dir/expected.yaml"
  else
    kubectl kustomize "$dir" > "$dir/expected.yaml"
  fi
  echo "updated $dir" >&2
done
