# Benchmarks (benches/, BENCHMARKS.md). Never part of `make test`: figures, not assertions.
# `make bench` builds release binaries (kwrun, policy-bench, the static agent), runs
# benches/bench.py (policy latency, artifact throughput and memory, pod overhead, artifact volumes,
# pulls through a mirror), and writes benches/results.json and the generated tables of
# BENCHMARKS.md.
# Quick run with small data: make bench BENCH_BIG_MIB=64 BENCH_SMALL_FILES=500 BENCH_REPEAT=1
#   BENCH_POD_RUNS=2 BENCH_VOLUME_MIB=16 BENCH_MIRROR_MIB=16

BENCH_KWRUN := $(CARGO_TARGET_DIR)/release/kwrun
BENCH_POLICY_TOOL := $(CARGO_TARGET_DIR)/release/policy-bench
# Results of every stage; the report reads them back.
BENCH_OUT ?= $(CARGO_TARGET_DIR)/bench
BENCH_VARS := BENCH_BIG_MIB BENCH_SMALL_FILES BENCH_SMALL_BYTES BENCH_REPEAT BENCH_POLICY_SAMPLES BENCH_POD_RUNS \
	BENCH_VOLUME_MIB BENCH_MIRROR_MIB BENCH_MIRROR_DISTRIBUTION BENCH_WORK
BENCH_ENV = KWRUN=$(BENCH_KWRUN) POLICY_BENCH=$(BENCH_POLICY_TOOL) AGENT_BIN=$(AGENT_BIN) \
	POLICY=$(CURDIR)/annotated-policy.wasm BENCH_OUT=$(BENCH_OUT) \
	$(foreach v,$(BENCH_VARS),$(if $($(v)),$(v)=$($(v))))

.PHONY: bench bench-tools bench-policy bench-agent bench-pod bench-volume bench-mirror bench-controller bench-report

# Release builds: latency is measured on what a policy server would run, not a debug build.
bench-tools: | bootstrap peers ## release kwrun and policy-bench, the policy module and the static agent
	$(CARGO) build --release -p oras-cache-bench --bin policy-bench
	$(MAKE) --no-print-directory KWRUN=$(BENCH_KWRUN) kwrun policy.wasm annotated-policy.wasm agent

bench: bench-tools ## every benchmark; rewrites benches/results.json and BENCHMARKS.md's tables
	$(BENCH_ENV) python3 benches/bench.py all

# The report needs every stage's results in $(BENCH_OUT).
bench-policy bench-agent bench-pod bench-volume bench-mirror bench-controller bench-report: bench-%: bench-tools ## one stage of make bench
	$(BENCH_ENV) python3 benches/bench.py $*
