#!/usr/bin/env bash
# Regenerates go.mod/go.sum for a Kubernetes version: every k8s.io staging module that
# k8s.io/kubernetes requires at v0.0.0 is replaced by its published v0.<minor>.<patch>,
# and etcd's server is pinned to the version kubernetes itself requires.
# Usage: hack/control-plane/update-go-mod.sh [1.37.2]
set -euo pipefail
K8S=${1:-$(cat "$(dirname "$0")/VERSION")}
STAGING="v0.${K8S#1.}"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
cd "$(dirname "$0")"
rm -f go.mod go.sum
go mod init kfop.dev/hack/control-plane
KUBE_MOD=$(go mod download -json "k8s.io/kubernetes@v$K8S" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
for m in $(grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0(\s|$)' "$KUBE_MOD" | awk '{print $1}' | sort -u); do
  go mod edit -replace "$m=$m@$STAGING"
done
ETCD=$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2; exit}' "$KUBE_MOD")
GO_VERSION=$(awk '$1=="go"{print $2; exit}' "$KUBE_MOD")
go mod edit -go "$GO_VERSION" -require "k8s.io/kubernetes@v$K8S" -require "go.etcd.io/etcd/server/v3@$ETCD"
grep -E '^godebug ' "$KUBE_MOD" | while read -r _ setting; do go mod edit -godebug "$setting"; done
go mod tidy
echo "$K8S" > VERSION
