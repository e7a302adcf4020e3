# Benchmarks (included by the Makefile).
.PHONY: bench bench-smoke bench-takeover siege

bench: setup-bench build ## every lane side by side with the no-op ceilings; writes bench/results/ and docs/benchmarks.md (~15 min)
	@bash scripts/with-deps.sh node dist/bench/run.js

bench-smoke: setup-bench build ## the same harness in seconds (what make test runs)
	@BENCH_SMOKE=1 BENCH_OUT=$${BENCH_OUT:-bench/results/smoke} bash scripts/with-deps.sh node dist/bench/run.js

siege: setup-bench build ## the original's exact siege commands against a local service, beside its published figures
	@bash scripts/with-deps.sh bash scripts/siege.sh

bench-takeover: build ## takeover time with 1M recorded sales: cold, from a snapshot, idle (BENCH_TAKEOVER_SALES=1000000,10000000)
	@bash scripts/with-deps.sh node dist/bench/takeover.js
