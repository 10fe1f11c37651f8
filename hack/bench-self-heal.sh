#!/usr/bin/env bash
# Self-heal benchmark on the local control plane (see benches/self_heal.rs): KFDEFS (4) KfDefs of
# OBJECTS_PER_KFDEF (260) mixed objects each; STORMS (3) times, 100 of them deleted at once (a CRD
# and its custom objects among them); last healed vs the API server's own ceiling measured in the
# same run, p50/p99 delete -> re-created, the operator's peak RSS, writes over IDLE_SECONDS idle.
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory control-plane
KFOP_CONTROL_PLANE_BIN="$(hack/control-plane/build.sh)" cargo bench --bench self_heal
