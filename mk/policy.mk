# The Kubewarden policy: the wasm module, its annotated form, and its size.
# `make policy.wasm` works from a clean checkout: bootstrap adds the wasm32-wasip1 target.

POLICY_TARGET := wasm32-wasip1
POLICY_WASM_BUILT := $(CARGO_TARGET_DIR)/$(POLICY_TARGET)/policy/oras_cache_policy.wasm
POLICY_SOURCES := $(shell find policy/src api/src -name '*.rs') policy/Cargo.toml policy/build.rs api/Cargo.toml Cargo.toml Cargo.lock
# kwctl when it is installed, else kwrun's annotate (built first).
ANNOTATE ?= $(if $(KWCTL_INSTALLED),kwctl annotate,$(KWRUN) annotate)

.PHONY: policy policy-size

policy: policy.wasm ## build policy.wasm

policy.wasm: $(POLICY_SOURCES) | bootstrap ## the policy module (wasm32-wasip1, profile "policy")
	$(CARGO) build -p oras-cache-policy --target $(POLICY_TARGET) --profile policy
	cp $(POLICY_WASM_BUILT) $@

annotated-policy.wasm: policy.wasm metadata.yml README.md | $(if $(KWCTL_INSTALLED),,kwrun) ## policy.wasm with metadata.yml and README.md (kwctl annotate)
	$(ANNOTATE) -m metadata.yml -u README.md -o $@ policy.wasm

# BENCHMARKS.md records the size (target: under 1 MiB).
policy-size: policy.wasm ## print the module size; fails at 1 MiB or more
	@size=$$(stat -c %s policy.wasm); \
	  echo "policy.wasm: $$size bytes"; \
	  if [ $$size -ge 1048576 ]; then echo "policy.wasm is over 1 MiB" >&2; exit 1; fi

TEST_TARGETS += policy-size
