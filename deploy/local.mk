# Running the bundle for real on a machine without Docker (included by the Makefile): the image
# built with buildah from the unchanged Dockerfile and run under podman, and — next — a
# single-node Kubernetes built from pinned modules and Debian packages. README: "What is proven here".
.PHONY: image image-test

JEST_CONTAINERS := node --experimental-vm-modules node_modules/jest/bin/jest.js --config tests/containers/jest.config.js

image: setup ## build superstock:dev with buildah from the Dockerfile (over a local node:24-bookworm-slim), plus Redis, MongoDB wire-server, siege and pause images
	@bash scripts/image/build.sh all

image-test: image ## run the image: 3 read-only, non-root replicas + Redis + the wire server under podman; failover under load
	@$(JEST_CONTAINERS) tests/containers/image.test.ts

.PHONY: kube-tools-node kube-up-local kube-down-local kube-test-local
KUBE_LOCAL_STATE ?= .data/kube-local
KUBE_LOCAL := bash scripts/kube-node/node.sh

kube-tools-node: setup
	@bash scripts/kube-tools.sh node

kube-up-local: kube-tools-node ## a real single-node Kubernetes here, in namespaces of its own (no Docker, no kind); images imported
	@bash scripts/image/build.sh node
	@$(KUBE_LOCAL) up $(KUBE_LOCAL_STATE)

kube-down-local: ## stop it and sweep what it left (its logs stay in .data/kube-local/logs)
	@$(KUBE_LOCAL) down $(KUBE_LOCAL_STATE)

kube-test-local: kube-tools-node ## the chart serving on that node: pods Ready, one primary, failover, no sale lost, Prometheus
	@bash scripts/image/build.sh node
	@$(JEST_CONTAINERS) tests/containers/kube-local.test.ts
