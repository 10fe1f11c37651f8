#!/usr/bin/env bash
# Self-heal benchmark on the local control plane (see benches/self_heal.rs): KFDEFS (4) KfDefs of
# OBJECTS_PER_KFDEF (260) mixed objects each; STORMS (3) times, 100 of them deleted at once (a CRD
# and its custom objects among them); last healed vs the API server's own ceiling measured in the
# same run, p50/p99 delete -> re-created (kfop's and the ceiling's), the operator's peak RSS,
# writes over IDLE_SECONDS idle. The operator measured is the deployed build (release profile,
# no test harness), built into target/deploy unless KFOP_BIN names another.
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory control-plane
if [ -z "${KFOP_BIN:-}" ]; then
  cargo build --release --locked --quiet --bin kfop --target-dir target/deploy
  export KFOP_BIN="$PWD/target/deploy/release/kfop"
fi
KFOP_CONTROL_PLANE_BIN="$(hack/control-plane/build.sh)" cargo bench --bench self_heal
