# kwrun (the kwctl-compatible runner in kwrun/) and the policy's end-to-end tests (e2e/).
# This file is included before mk/policy.mk (sorted order), so the ANNOTATE chosen here wins over
# policy.mk's `ANNOTATE ?= kwctl annotate` when kwctl is not installed.

KWRUN ?= $(CARGO_TARGET_DIR)/debug/kwrun
KWRUN_SOURCES := $(shell find kwrun/src agent/src api/src -name '*.rs') kwrun/Cargo.toml agent/Cargo.toml Cargo.lock
# What e2e.bats runs: kwctl when it is installed and KWCTL is not given, kwrun otherwise.
KWCTL ?= $(if $(shell command -v kwctl 2>/dev/null),kwctl,$(KWRUN))

ifeq ($(shell command -v kwctl 2>/dev/null),)
ANNOTATE ?= $(KWRUN) annotate
# The runner must exist before it annotates.
annotated-policy.wasm: $(KWRUN)
endif

.PHONY: kwrun e2e-tests e2e-bats e2e-rust

kwrun: $(KWRUN)

# KWRUN may name the release binary (demo/lib.sh does): build the profile its path names.
$(KWRUN): $(KWRUN_SOURCES)
	$(CARGO) build $(if $(findstring /release/,$(KWRUN)),--release) -p oras-cache-kwrun --bin kwrun
	@touch -c $@

# The Kubewarden-style bats suite (runs unchanged with KWCTL=kwctl), then the Rust end-to-end
# tests: every fixture through the annotated module, and the registry round trip. kwrun's own
# tests (hand-written guests, its command line) run with the workspace's unit tests.
e2e-tests: e2e-bats e2e-rust

e2e-bats: annotated-policy.wasm $(KWRUN) | bootstrap
	KWCTL=$(KWCTL) POLICY=$(CURDIR)/annotated-policy.wasm bats e2e/e2e.bats

e2e-rust: annotated-policy.wasm $(KWRUN)
	ORAS_CACHE_ANNOTATED_POLICY=$(CURDIR)/annotated-policy.wasm $(CARGO) test -p oras-cache-e2e

TEST_TARGETS += e2e-tests
