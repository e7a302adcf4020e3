# Benchmarks (included by the Makefile).
# The MongoDB wire server a bench starts (when none runs) gets a 3 GiB heap: it keeps every ledger
# batch on its heap (~1.4 KB each), a long durable run leaves some 10^5 of them, and a serial full
# collection of a few hundred MiB stops it past the 1 s dependency bound (1.3 s at 219 MiB,
# bench/ANALYSIS.md). It commits only what it uses.
BENCH_WIRE_OPTS = MONGO_WIRE_JAVA_OPTS="$${MONGO_WIRE_JAVA_OPTS:--Xmx3g}"
.PHONY: bench bench-quick bench-smoke bench-profile bench-cluster bench-cluster-profile bench-flood bench-takeover siege

bench: setup-bench build ## every lane side by side with the no-op ceilings, req/s and server CPU per request, a million SKUs loaded in bulk, then the cluster and flood sections (bench-cluster, bench-flood); writes bench/results/ and docs/benchmarks.md (~25 min)
	@$(BENCH_WIRE_OPTS) bash scripts/with-deps.sh bash -c 'node dist/bench/run.js && node dist/bench/cluster.js && node dist/bench/flood.js'

bench-cluster: setup-bench build ## one replica beside three in primary and in allotments mode, 64 connections through every port: req/s, CPU per buy, a hot-SKU end of sale, a projection for N machines; writes the cluster section of docs/benchmarks.md (3–5 min)
	@$(BENCH_WIRE_OPTS) bash scripts/with-deps.sh node dist/bench/cluster.js

bench-cluster-profile: setup-bench build ## where a buy's CPU goes: the cluster bench's standalone, allotments and standalone-third (one replica at 21 connections) under node --cpu-prof, CPU per buy by thread and category side by side; writes bench/results/cluster-profile/profile.md (~5 min; not the bench's figures: profiling costs CPU)
	@rm -rf bench/results/cluster-profile
	@BENCH_CPU_PROF_DIR=bench/results/cluster-profile BENCH_OUT=bench/results/cluster-profile BENCH_CLUSTER_MODES=$${BENCH_CLUSTER_MODES:-standalone,allotments,standalone-third} \
	  BENCH_QUICK=1 BENCH_WARMUP=$${BENCH_WARMUP:-10} BENCH_DURATION=$${BENCH_DURATION:-5} BENCH_HOT_STOCK=$${BENCH_HOT_STOCK:-3000} bash scripts/with-deps.sh node dist/bench/cluster.js

bench-profile: setup-bench build ## where one replica's CPU per request goes: BENCH_TARGETS (lock,lock, durable; names as make bench's rows) at BENCH_CONNECTIONS (256) under node --cpu-prof, 3 interleaved rounds, CPU per request by thread and category side by side against the first; writes bench/results/profile/profile.md (~30 s per target; not the bench's figures: profiling costs CPU)
	@rm -rf bench/results/profile
	@BENCH_CPU_PROF_DIR=bench/results/profile BENCH_OUT=bench/results/profile BENCH_TARGETS="$${BENCH_TARGETS:-lock,lock, durable}" BENCH_CONNECTIONS=$${BENCH_CONNECTIONS:-256} \
	  BENCH_WARMUP=$${BENCH_WARMUP:-5} BENCH_DURATION=$${BENCH_DURATION:-5} $(BENCH_WIRE_OPTS) bash scripts/with-deps.sh node dist/bench/run.js

bench-flood: setup-bench build ## a durable replica (and a cluster's primary) at 64 and at 2,400 connections: admitted req/s, share refused with 503, admitted p50/p99, peak RSS, sold == acknowledged, no failover; writes the flood section of docs/benchmarks.md (~3 min)
	@$(BENCH_WIRE_OPTS) bash scripts/with-deps.sh node dist/bench/flood.js

bench-quick: setup-bench build ## the same at 64 connections with 3 s runs (a few minutes); BENCH_DOCS=1 also writes docs/benchmarks.md
	@BENCH_QUICK=1 $(BENCH_WIRE_OPTS) bash scripts/with-deps.sh node dist/bench/run.js

bench-smoke: setup-bench build ## the same harness in seconds, the flood bench too (what make test runs)
	@BENCH_SMOKE=1 BENCH_OUT=$${BENCH_OUT:-bench/results/smoke} bash scripts/with-deps.sh bash -c 'node dist/bench/run.js && node dist/bench/flood.js'

siege: setup-bench build ## the original's exact siege commands against a local service, beside its published figures
	@bash scripts/with-deps.sh bash scripts/siege.sh

bench-takeover: build ## takeover time with 1M recorded sales: cold, from a snapshot, idle (BENCH_TAKEOVER_SALES=1000000,10000000; BENCH_TAKEOVER_ELECTION=mongo: as an elected primary, counting step-downs; 10M needs MONGO_WIRE_JAVA_OPTS="-Xmx12g -Xmn1g", see README)
	@bash scripts/with-deps.sh node dist/bench/takeover.js
