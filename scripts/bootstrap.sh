#!/usr/bin/env bash
# Idempotent set-up of everything `make demo` and `make test` need on a Debian machine with Rust.
# Each step checks first and installs only what is missing, so running it again is cheap.
set -euo pipefail

# python3-venv: Debian's python3 cannot make a virtual environment without it.
APT_PACKAGES=(docker-registry podman buildah runc busybox-static bats apache2-utils curl jq skopeo uidmap musl-tools catatonit openssl time python3-venv)
RUST_TARGETS=(wasm32-wasip1 x86_64-unknown-linux-musl)
PIP_PACKAGES=(oras pyyaml jsonpatch)
# Python tools go into a project virtual environment, never the system Python: Debian 12 marks its
# Python EXTERNALLY-MANAGED (PEP 668) and refuses `pip install` into it. The Makefile, demo/lib.sh
# and the Rust tests put $VENV/bin first on PATH, so `python3` there is this environment's.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${ORAS_VENV:-$ROOT/.venv}

log() { printf '[bootstrap] %s\n' "$*"; }

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing_apt=()
for pkg in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing_apt+=("$pkg")
  fi
done
if [ ${#missing_apt[@]} -gt 0 ]; then
  log "installing apt packages: ${missing_apt[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_apt[@]}"
fi

if command -v rustup >/dev/null 2>&1; then
  installed_targets=$(rustup target list --installed)
  for target in "${RUST_TARGETS[@]}"; do
    if ! grep -qx "$target" <<<"$installed_targets"; then
      log "adding rust target $target"
      rustup target add "$target"
    fi
  done
  for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
      log "adding rust component $component"
      rustup component add "$component"
    fi
  done
fi

# The Python the environment is made from; only its standard library is used.
PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python3" ] || ! "$VENV/bin/python3" -c 'import sys' >/dev/null 2>&1; then
  log "creating the Python environment $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
fi
for pkg in "${PIP_PACKAGES[@]}"; do
  if ! "$VENV/bin/python3" -m pip show -q "$pkg" >/dev/null 2>&1; then
    log "installing pip package $pkg into $VENV"
    "$VENV/bin/python3" -m pip install -q --disable-pip-version-check "$pkg"
  fi
done
log "ok"
