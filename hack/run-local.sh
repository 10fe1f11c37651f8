#!/usr/bin/env bash
# kfop's main job for a newcomer (`make run`): with no cluster configured, start the local control
# plane; install the CRDs and run the operator in the foreground; apply the example KfDef; print
# how to watch it, delete a component and see it come back. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${KFOP_CACHE:-$HOME/.cache/kfop}
cargo build --quiet --features testbed --bin kfop
KFOP=target/debug/kfop
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [ -z "${KUBECONFIG:-}" ] && [ ! -f "$HOME/.kube/config" ]; then
  echo "no cluster configured: starting the local control plane (the first run builds it)" >&2
  BIN_DIR=$(hack/control-plane/build.sh)
  mkdir -p "$CACHE/local"
  rm -f "$CACHE/local/kubeconfig"
  "$KFOP" local-cluster --bin-dir "$BIN_DIR" --kubeconfig-out "$CACHE/local/kubeconfig" > "$CACHE/local/cluster.out" &
  PIDS+=($!)
  for _ in $(seq 1 120); do
    grep -q '^KUBECONFIG=' "$CACHE/local/cluster.out" 2>/dev/null && break
    kill -0 "${PIDS[0]}" 2>/dev/null || { echo "the local control plane failed to start" >&2; exit 1; }
    sleep 0.5
  done
  export KUBECONFIG="$CACHE/local/kubeconfig"
else
  echo "using the cluster of ${KUBECONFIG:-$HOME/.kube/config}" >&2
fi

"$KFOP" run --install-crds &
PIDS+=($!)
"$KFOP" apply -f examples/kfdef.yaml

cat >&2 <<EOT

kfop is running. In another shell:
  export KUBECONFIG=$KUBECONFIG
  kubectl get kfdef -A -w                                   # Available / Applications columns
  kubectl get all,cm -n kfop-demo -l app.kubernetes.io/managed-by=kfop
  kubectl delete deployment hello -n kfop-demo               # ... and watch it come back at once
  kubectl describe kfdef demo -n kfop-system                 # conditions, inventory, events
  kubectl delete kfdef demo -n kfop-system                   # everything it created goes, cluster-scoped too
Ctrl-C here stops kfop (and the local control plane).
EOT
wait "${PIDS[-1]}"
