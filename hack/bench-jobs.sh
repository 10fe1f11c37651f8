#!/usr/bin/env bash
# Benchmark of the job controllers: a 1000-worker TFJob, create -> all pods and services exist, on a
# local control plane; prints pods/s and the ratios against the API server's ceiling and against
# training-operator's settings measured in the same run; then a 1000-task Framework, create -> all
# pods exist, against the ceiling for the same pods; then an elastic PyTorchJob scaled 2 -> 64 -> 2
# Workers through its scale subresource. Options: --workers N, --peer-workers N, --tasks N,
# --rounds N, --elastic-max N.
set -euo pipefail
cd "$(dirname "$0")/.."
KFOP_CONTROL_PLANE_BIN="$(hack/control-plane/build.sh)"
export KFOP_CONTROL_PLANE_BIN
exec cargo bench --locked --bench jobs -- "$@"
