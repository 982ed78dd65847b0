# oras-cache: the two commands a newcomer runs are `make demo` and `make test`.
# Each part keeps its own targets in mk/<part>.mk; this file holds what they share.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# One target dir for every cargo call, so a second `make` reuses the first one's build.
export CARGO_TARGET_DIR ?= $(CURDIR)/target
CARGO ?= cargo

# Parts append the targets `make test` runs after the workspace's unit tests.
TEST_TARGETS :=

.PHONY: help bootstrap fmt lint unit-tests test
help:
	@echo "make demo    run the two-step workflow end to end (local registry, podman)"
	@echo "make test    run every test (installs what it needs first)"
	@echo "make bench   run the benchmarks and rewrite BENCHMARKS.md"

bootstrap:
	@scripts/bootstrap.sh

fmt:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit-tests: bootstrap
	$(CARGO) test --workspace

include $(sort $(wildcard mk/*.mk))

test: bootstrap fmt lint unit-tests $(TEST_TARGETS)
	@echo "make test: all tests passed"
