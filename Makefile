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

# Shared by several parts, so defined before any mk/ file reads them (no include-order tricks).
# kwrun, the local policy runner; KWRUN=$(CARGO_TARGET_DIR)/release/kwrun selects the release build.
KWRUN ?= $(CARGO_TARGET_DIR)/debug/kwrun
# Real kwctl, when installed, annotates the policy and runs e2e.bats instead of kwrun.
KWCTL_INSTALLED := $(shell command -v kwctl 2>/dev/null)

# Parts append the targets `make test` runs after the workspace's unit tests.
TEST_TARGETS :=

.PHONY: help bootstrap bootstrap-tests fmt lint unit-tests test

help: ## list every target with what it does
	@grep -hE '^[a-zA-Z0-9_.% -]+:.*## ' $(MAKEFILE_LIST) \
	  | sed -E 's/^([^:]+):.*## (.*)$$/\1\t\2/' \
	  | awk -F'\t' '{ printf "  %-34s %s\n", $$1, $$2 }'

bootstrap: ## install what demo and test need: apt packages, rust targets, the .venv (idempotent)
	@scripts/bootstrap.sh

fmt: ## check formatting (cargo fmt)
	$(CARGO) fmt --all -- --check

lint: ## clippy on every crate and target, warnings are errors
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The end-to-end crate needs the built policy module: e2e-rust runs it.
unit-tests: bootstrap peers ## cargo test of every crate but the end-to-end one
	$(CARGO) test --workspace --exclude oras-cache-e2e

bootstrap-tests: bootstrap ## the set-up script on a system Python that refuses pip (Debian 12)
	bats scripts/bootstrap.bats

TEST_TARGETS += bootstrap-tests

include $(sort $(wildcard mk/*.mk))

test: bootstrap peers fmt lint unit-tests $(TEST_TARGETS) ## every test: formatting, lint, unit, e2e, demo (what CI runs)
	@echo "make test: all tests passed"
