#!/usr/bin/env bash
# Render speed against the real peers, measured in the same run on the same directories:
#  1. in-process, per corpus: kfop's renderer (benches/render.rs, criterion, release build) vs
#     kustomize's own library, sigs.k8s.io/kustomize/api v0.18.0 krusty (hack/krusty-bench, the
#     engine of kubectl's kustomize v5.5.0), both over every directory of the corpus, and the v1.0
#     directory with the largest output;
#  2. whole CLI over the v1.0 corpus: `kfop render -k DIR` vs `kubectl kustomize DIR`, one process
#     per directory.
# Prints the times and the ratios. CORPUS_ROOT (default ../shared/corpus) holds the corpora;
# ROUNDS (default 5) sets the krusty rounds and CLI rounds (best of).
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS_ROOT=${CORPUS_ROOT:-${KFOP_CORPUS:-../shared/corpus}}
ROUNDS=${ROUNDS:-5}
V10="$CORPUS_ROOT/kubeflow-manifests-v1.0"
[ -f "$V10/dirs.txt" ] || { echo "corpus not found at $V10" >&2; exit 1; }
command -v kubectl >/dev/null || { echo "kubectl is needed for the CLI comparison" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq is needed to read criterion's results" >&2; exit 1; }
KRUSTY=$(hack/build-go-tool.sh krusty-bench | tail -1)
# The CLI measured is the deployed build (release profile), apart from the benches' own builds.
cargo build --release --locked --quiet --bin kfop --target-dir target/deploy
export KFOP_CORPUS="$CORPUS_ROOT"

# The v1.0 directory with the largest kubectl output, as benches/render.rs picks it.
LARGEST=$(cd "$V10/expected" && ls -S | head -1)
LARGEST_DIR=$(awk -v want="${LARGEST%.yaml}" '{ d=$0; gsub("/", "_", d); if (d == want) print $0 }' "$V10/dirs.txt")

echo "== in-process: kfop (criterion) vs krusty v0.18.0, same directories ==" >&2
cargo bench --quiet --bench render -- --noplot >&2
mean_s() { # criterion's mean of a benchmark, in seconds
  jq '.mean.point_estimate / 1e9' "target/criterion/$1/new/estimates.json"
}
printf '%-10s %6s %14s %14s %8s\n' corpus dirs kfop krusty ratio
for id in v1.0 v1.9.1; do
  dir="$CORPUS_ROOT/kubeflow-manifests-$id"
  [ -f "$dir/dirs.txt" ] || { echo "skipping $id: not found" >&2; continue; }
  args=(-root "$dir/tree" -dirs "$dir/dirs.txt" -rounds "$ROUNDS")
  [ "$id" = v1.0 ] && args+=(-largest "$LARGEST_DIR")
  krusty_json=$("$KRUSTY" "${args[@]}")
  kfop=$(mean_s "render-$id/all-dirs")
  krusty=$(jq '.all.mean_seconds' <<<"$krusty_json")
  printf '%-10s %6d %12.4f s %12.4f s %7.1fx\n' "$id" "$(jq '.all.total' <<<"$krusty_json")" \
    "$kfop" "$krusty" "$(echo "$krusty / $kfop" | bc -l)"
  if [ "$id" = v1.0 ]; then
    kfop_l=$(mean_s "render-v1.0-largest")
    krusty_l=$(jq '.largest.mean_seconds' <<<"$krusty_json")
    printf '%-10s %6s %11.3f ms %11.3f ms %7.1fx   (%s)\n' "largest" 1 \
      "$(echo "$kfop_l * 1000" | bc -l)" "$(echo "$krusty_l * 1000" | bc -l)" \
      "$(echo "$krusty_l / $kfop_l" | bc -l)" "$LARGEST_DIR"
  fi
done

echo "== whole CLI over the v1.0 corpus: kfop render -k vs kubectl kustomize ==" >&2
KFOP=target/deploy/release/kfop
mapfile -t DIRS < "$V10/dirs.txt"
time_all() { # seconds taken to render every directory with the given command
  local start end
  start=$(date +%s.%N)
  for d in "${DIRS[@]}"; do "$@" "$V10/tree/$d" > /dev/null 2>&1 || true; done
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}
best_kfop=""; best_kubectl=""
for _ in $(seq "$ROUNDS"); do
  k=$(time_all "$KFOP" render -k)
  c=$(time_all kubectl kustomize)
  if [ -z "$best_kfop" ] || (( $(echo "$k < $best_kfop" | bc -l) )); then best_kfop=$k; fi
  if [ -z "$best_kubectl" ] || (( $(echo "$c < $best_kubectl" | bc -l) )); then best_kubectl=$c; fi
done
printf 'CLI, %d directories: kfop render -k %.3f s, kubectl kustomize %.3f s (best of %d): %.1fx\n' \
  "${#DIRS[@]}" "$best_kfop" "$best_kubectl" "$ROUNDS" "$(echo "$best_kubectl / $best_kfop" | bc -l)"
