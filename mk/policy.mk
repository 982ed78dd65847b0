# The Kubewarden policy: the wasm module, its annotated form, and its size.
# `make policy.wasm` works from a clean checkout: bootstrap adds the wasm32-wasip1 target.

POLICY_TARGET := wasm32-wasip1
POLICY_WASM_BUILT := $(CARGO_TARGET_DIR)/$(POLICY_TARGET)/policy/oras_cache_policy.wasm
POLICY_SOURCES := $(shell find policy/src api/src -name '*.rs') policy/Cargo.toml policy/build.rs api/Cargo.toml Cargo.toml Cargo.lock
# kwctl when it is installed; mk/e2e.mk may point this at the in-repo runner's annotate instead.
ANNOTATE ?= kwctl annotate

.PHONY: policy policy-size policy-test

policy: policy.wasm

policy.wasm: $(POLICY_SOURCES) | bootstrap
	$(CARGO) build -p oras-cache-policy --target $(POLICY_TARGET) --profile policy
	cp $(POLICY_WASM_BUILT) $@

annotated-policy.wasm: policy.wasm metadata.yml README.md
	$(ANNOTATE) -m metadata.yml -u README.md -o $@ policy.wasm

# Prints the module size in bytes; BENCHMARKS.md records it (target: under 1 MiB).
policy-size: policy.wasm
	@size=$$(stat -c %s policy.wasm); \
	  echo "policy.wasm: $$size bytes"; \
	  if [ $$size -ge 1048576 ]; then echo "policy.wasm is over 1 MiB" >&2; exit 1; fi

# The policy's native unit, example and property tests (also part of `cargo test --workspace`).
policy-test:
	$(CARGO) test -p oras-cache-policy -p oras-cache-api

TEST_TARGETS += policy-size
