#!/usr/bin/env bash
# Self-heal benchmark on the local control plane (see benches/self_heal.rs): p50/p99 from delete
# to re-created over 100 deletions with 500 managed objects, the operator's peak RSS, and the
# writes over a 60 s idle window. OBJECTS, DELETIONS and IDLE_SECONDS override the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory control-plane
KFOP_CONTROL_PLANE_BIN="$(hack/control-plane/build.sh)" cargo bench --bench self_heal
