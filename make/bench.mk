# Benchmarks: `include make/bench.mk` from the Makefile. bench/ runs from the repo root, not installed.
BENCH_ARGS ?=

bench: $(STAMP) ## measure trainer, streaming, pipeline, serving, quality, tuning, batch -> BENCHMARKS.md (~30 min)
	$(BIN)/python -m bench.run --out BENCHMARKS.md $(BENCH_ARGS)

bench-quick: $(STAMP) ## check the benchmark harness in under 2 minutes -> bench/out/BENCHMARKS-quick.md (git-ignored)
	$(BIN)/python -m bench.run --quick --out bench/out/BENCHMARKS-quick.md $(BENCH_ARGS)

.PHONY: bench bench-quick
