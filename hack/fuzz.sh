#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time each (first argument, seconds; default
# 60), seeded from tests/fixtures/kustomize. Needs a nightly toolchain; installs cargo-fuzz. The grown
# corpora stay in ${KFOP_CACHE:-$HOME/.cache/kfop}/fuzz-corpus; crashes land in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
rustup toolchain list 2>/dev/null | grep -q '^nightly' \
  || { echo "fuzz: a nightly toolchain is needed (rustup toolchain install nightly)" >&2; exit 1; }
CACHE="${KFOP_CACHE:-$HOME/.cache/kfop}"
# cargo-fuzz from the crate registry, once, into the cache.
if ! cargo fuzz --version >/dev/null 2>&1; then
  export PATH="$CACHE/cargo-fuzz/bin:$PATH"
  cargo fuzz --version >/dev/null 2>&1 \
    || cargo install --quiet --locked cargo-fuzz --root "$CACHE/cargo-fuzz" \
    || { echo "fuzz: installing cargo-fuzz failed" >&2; exit 1; }
fi
SEEDS="$CACHE/fuzz-corpus"
FIXTURES=tests/fixtures/kustomize

# yaml: every YAML file of the fixtures. kustomization: a fixture's kustomization.yaml, a NUL
# byte, and the first other YAML file of that fixture, renamed m.yaml (as the target serves it).
mkdir -p "$SEEDS/yaml" "$SEEDS/kustomization"
for file in "$FIXTURES"/*/*.yaml; do
  cp "$file" "$SEEDS/yaml/$(basename "$(dirname "$file")")-$(basename "$file")"
done
for dir in "$FIXTURES"/*/; do
  [ -f "$dir/kustomization.yaml" ] || continue
  other=$(find "$dir" -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml ! -name expected.yaml | sort | head -1)
  if [ -n "$other" ]; then
    { sed "s/$(basename "$other")/m.yaml/" "$dir/kustomization.yaml"; printf '\0'; cat "$other"; }
  else
    cat "$dir/kustomization.yaml"
  fi > "$SEEDS/kustomization/$(basename "$dir")"
done

status=0
for target in $(cargo +nightly fuzz list); do
  echo "== fuzz target $target: ${SECONDS_EACH}s ==" >&2
  cargo +nightly fuzz run "$target" "$SEEDS/$target" -- -max_total_time="$SECONDS_EACH" \
    -print_final_stats=1 || status=1
done
exit $status
