#!/usr/bin/env bash
# Idempotent set-up of everything `make demo` and `make test` need on a Debian machine with Rust.
# Each step checks first and installs only what is missing, so running it again is cheap.
set -euo pipefail

APT_PACKAGES=(docker-registry podman buildah runc busybox-static bats apache2-utils curl jq skopeo uidmap musl-tools catatonit openssl time)
RUST_TARGETS=(wasm32-wasip1 x86_64-unknown-linux-musl)
PIP_PACKAGES=(oras pyyaml jsonpatch)

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

PYTHON=${PYTHON:-python3}
for pkg in "${PIP_PACKAGES[@]}"; do
  if ! "$PYTHON" -m pip show -q "$pkg" >/dev/null 2>&1; then
    log "installing pip package $pkg"
    "$PYTHON" -m pip install -q "$pkg"
  fi
done
log "ok"
