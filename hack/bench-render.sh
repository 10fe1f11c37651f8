#!/usr/bin/env bash
# Renders every directory of the kubeflow/manifests v1.0 corpus with `kfop render -k` and with
# `kubectl kustomize`, in the same run, and prints both totals and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${CORPUS:-../shared/corpus/kubeflow-manifests-v1.0}
[ -f "$CORPUS/dirs.txt" ] || { echo "corpus not found at $CORPUS" >&2; exit 1; }
command -v kubectl >/dev/null || { echo "kubectl is needed for the comparison" >&2; exit 1; }
cargo build --release --quiet --bin kfop
KFOP=target/release/kfop
mapfile -t DIRS < "$CORPUS/dirs.txt"

time_all() { # prints seconds taken to render every directory with the given command
  local start end
  start=$(date +%s.%N)
  for d in "${DIRS[@]}"; do "$@" "$CORPUS/tree/$d" > /dev/null 2>&1 || true; done
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

ROUNDS=${ROUNDS:-3}
best_kfop=""; best_kubectl=""
for _ in $(seq "$ROUNDS"); do
  k=$(time_all "$KFOP" render -k)
  c=$(time_all kubectl kustomize)
  if [ -z "$best_kfop" ] || (( $(echo "$k < $best_kfop" | bc -l) )); then best_kfop=$k; fi
  if [ -z "$best_kubectl" ] || (( $(echo "$c < $best_kubectl" | bc -l) )); then best_kubectl=$c; fi
done
printf 'directories:           %d\n' "${#DIRS[@]}"
printf 'kfop render -k:        %.3f s (best of %d)\n' "$best_kfop" "$ROUNDS"
printf 'kubectl kustomize:     %.3f s (best of %d)\n' "$best_kubectl" "$ROUNDS"
printf 'kubectl / kfop:        %.1fx\n' "$(echo "$best_kubectl / $best_kfop" | bc -l)"
