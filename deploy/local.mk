# Running the bundle for real on a machine without Docker (included by the Makefile): the image
# built with buildah from the unchanged Dockerfile and run under podman, and — next — a
# single-node Kubernetes built from pinned modules and Debian packages. README: "What is proven here".
.PHONY: image image-test

JEST_CONTAINERS := node --experimental-vm-modules node_modules/jest/bin/jest.js --config tests/containers/jest.config.js

image: setup ## build superstock:dev with buildah from the Dockerfile (over a local node:24-bookworm-slim), plus Redis, MongoDB wire-server, siege and pause images
	@bash scripts/image/build.sh all

image-test: image ## run the image: 3 read-only, non-root replicas + Redis + the wire server under podman; failover under load
	@$(JEST_CONTAINERS) tests/containers/image.test.ts
