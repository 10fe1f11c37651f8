# kfop — the usual targets. `make run` starts kfop's main job; `make test` runs every test.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
# Built binaries and Go caches live outside the repo (see hack/control-plane/build.sh).
export KFOP_CACHE ?= $(HOME)/.cache/kfop

.PHONY: all build release test unit-test lint fmt clippy control-plane crds run image image-oci clean help bench bundle validate-bundle fuzz

all: build

help: ## List the targets.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## Build kfop (debug).
	$(CARGO) build

release: ## Build kfop (release).
	$(CARGO) build --release --locked

control-plane: ## Build etcd, kube-apiserver and kube-controller-manager from source, once, into $(KFOP_CACHE).
	hack/control-plane/build.sh >/dev/null

test: lint control-plane validate-bundle ## Lint, validate the OLM bundle, then run every test (unit, corpus and cluster) on a local control plane.
	KFOP_REQUIRE_CLUSTER=1 KFOP_REQUIRE_INPUTS=1 KFOP_CONTROL_PLANE_BIN="$$(hack/control-plane/build.sh)" $(CARGO) test --locked --all-targets

unit-test: ## Run the tests that need no cluster (cluster tests skip, saying so).
	$(CARGO) test --locked --all-targets

lint: fmt clippy ## cargo fmt --check and clippy with warnings as errors.

fmt:
	$(CARGO) fmt --check

clippy:
	$(CARGO) clippy --locked --all-targets -- -D warnings

bundle: ## Regenerate the OLM bundle in bundle/ from the code and deploy/kfop.yaml.
	$(CARGO) run --quiet -- bundle -o bundle

validate-bundle: ## Check bundle/ with operator-framework's validators (default, OperatorHub, good practices); any error or warning fails.
	hack/validate-bundle.sh

crds: ## Regenerate crds/ and the CRDs of manifests/ from the Rust types.
	$(CARGO) run --quiet -- crds > crds/kfop.yaml
	$(CARGO) run --quiet -- crds --name tfjobs.kubeflow.org > manifests/tf-job-controller/base/crd.yaml
	$(CARGO) run --quiet -- crds --name pytorchjobs.kubeflow.org > manifests/pytorch-job-controller/base/crd.yaml
	$(CARGO) run --quiet -- crds --name frameworks.frameworkcontroller.microsoft.com > manifests/framework-controller/base/crd.yaml

run: ## kfop's main job: the operator on a local control plane (or $$KUBECONFIG's cluster) with an example KfDef.
	hack/run-local.sh

bench: ## Benchmarks: rendering vs kubectl kustomize, self-heal and job creation on the local control plane.
	hack/bench-render.sh
	hack/bench-self-heal.sh
	hack/bench-jobs.sh

FUZZ_SECONDS ?= 60
fuzz: ## Run each fuzz target for FUZZ_SECONDS (needs a nightly toolchain; installs cargo-fuzz; not part of CI).
	hack/fuzz.sh $(FUZZ_SECONDS)

image: ## Build the container image (needs a Docker engine).
	docker build -t kfop:dev .

image-oci: release ## Build the container image offline (no Docker engine) as an OCI archive: target/kfop.oci.tar.
	hack/image-oci.sh target/release/kfop target/kfop.oci.tar

clean: ## Remove build output (not the control-plane cache).
	$(CARGO) clean
