# oras-cache: the two commands a newcomer runs are `make demo` and `make test`.
# Each part keeps its own targets in mk/<part>.mk; this file holds what they share.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# One target dir for every cargo call, so a second `make` reuses the first one's build.
export CARGO_TARGET_DIR ?= $(CURDIR)/target
CARGO ?= cargo
# Python tools (oras-py, pyyaml, jsonpatch) live in the project environment scripts/bootstrap.sh
# makes: every `python3` a target runs, including the tests', is that environment's.
export ORAS_VENV ?= $(CURDIR)/.venv
export PATH := $(ORAS_VENV)/bin:$(PATH)

# Parts append the targets `make test` runs after the workspace's unit tests.
TEST_TARGETS :=

.PHONY: help bootstrap bootstrap-tests fmt lint unit-tests test
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

# The set-up script itself, on a system Python that refuses pip (Debian 12).
bootstrap-tests: bootstrap
	bats scripts/bootstrap.bats

TEST_TARGETS += bootstrap-tests

include $(sort $(wildcard mk/*.mk))

test: bootstrap fmt lint unit-tests $(TEST_TARGETS)
	@echo "make test: all tests passed"
