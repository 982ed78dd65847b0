# kwrun (kwrun/) and the policy's end-to-end tests (e2e/).

# What e2e.bats runs: kwctl when it is installed and KWCTL is not given, kwrun otherwise.
KWCTL ?= $(if $(KWCTL_INSTALLED),kwctl,$(KWRUN))

.PHONY: kwrun e2e-tests e2e-bats e2e-rust

# Cargo tracks the sources; the profile follows the path KWRUN names.
kwrun: ## build kwrun, the kwctl-compatible runner (KWRUN=<target>/release/kwrun: release)
	$(CARGO) build $(if $(findstring /release/,$(KWRUN)),--release) -p oras-cache-kwrun --bin kwrun

e2e-tests: e2e-bats e2e-rust ## the policy's end-to-end tests: e2e.bats, then the Rust ones

e2e-bats: annotated-policy.wasm kwrun | bootstrap ## e2e/e2e.bats (Kubewarden style; unchanged with KWCTL=kwctl)
	KWCTL=$(KWCTL) POLICY=$(CURDIR)/annotated-policy.wasm bats e2e/e2e.bats

e2e-rust: annotated-policy.wasm | bootstrap ## every fixture through the annotated module, and the registry round trip
	ORAS_CACHE_ANNOTATED_POLICY=$(CURDIR)/annotated-policy.wasm $(CARGO) test -p oras-cache-e2e

TEST_TARGETS += e2e-tests
