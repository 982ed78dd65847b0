#!/usr/bin/env bash
# Builds the real parts the tests and benches meet (etcd, kube-apiserver, kube-controller-manager,
# kubectl, helm, the oras CLI, distribution v3's registry) from the Go module proxy, at the versions
# pinned in scripts/peers/versions, into a cache outside the clone keyed by name and version:
#   ${ORAS_PEERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/oras-cache/peers}/<name>-<version>/<name>
# Idempotent: a part already in the cache is not built again, so a second run builds nothing.
# Prints what it built and how long each took. Usage: scripts/peers.sh [NAME...] (default: all);
# scripts/peers.sh --path NAME prints where NAME's binary is (built or not).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS_SRC=$ROOT/scripts/peers
CACHE=${ORAS_PEERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/oras-cache/peers}

log() { printf '[peers] %s\n' "$*"; }

# name -> "version kind target [package]" from the versions file.
declare -A VERSION KIND PACKAGE
ORDER=()
declare -A FILE
while read -r name version kind package file; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  VERSION[$name]=$version
  KIND[$name]=$kind
  PACKAGE[$name]=$package
  FILE[$name]=${file:-}
  ORDER+=("$name")
done <"$PEERS_SRC/versions"

binary_path() { printf '%s/%s-%s/%s\n' "$CACHE" "$1" "${VERSION[$1]}" "$1"; }

if [[ "${1:-}" == --path ]]; then
  [[ -n "${2:-}" && -n "${VERSION[${2}]:-}" ]] || { echo "usage: $0 --path NAME (one of: ${ORDER[*]})" >&2; exit 2; }
  binary_path "$2"
  exit 0
fi

# Version stamps the programs print (`--version`) that a plain `go build` leaves at a placeholder:
# Kubernetes' hack/lib/version.sh sets these, distribution's Makefile sets version.version, helm's
# Makefile internal/version.version. test-support reads the registry's --version line.
ldflags_for() {
  local name=$1 version=${VERSION[$1]}
  case "$name" in
    kube-*|kubectl)
      local minor=${version#v1.}; minor=${minor%%.*}
      printf '%s' "-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$version -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor" ;;
    registry) printf '%s' "-s -w -X github.com/distribution/distribution/v3/version.version=$version" ;;
    helm) printf '%s' "-s -w -X helm.sh/helm/v4/internal/version.version=$version" ;;
    *) printf '%s' "-s -w" ;;
  esac
}

build() {
  local name=$1 version=${VERSION[$1]} kind=${KIND[$1]} package=${PACKAGE[$1]}
  local out; out=$(binary_path "$name")
  if [[ -x "$out" ]]; then
    return 0
  fi
  local dir; dir=$(dirname "$out")
  mkdir -p "$dir"
  local staging; staging=$(mktemp -d "$dir/.build.XXXXXX")
  local started=$SECONDS
  log "building $name $version ($kind ${package}) ..."
  # Static binaries, no VCS stamping (there is no checkout), module downloads verified against the
  # checksum database as usual. The Go build cache makes a rebuild after a cache wipe fast.
  export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
  case "$kind" in
    module:*)
      local module_dir=$PEERS_SRC/${kind#module:}
      if [[ "$package" != . ]]; then
        # The versions file and the module's go.mod must name one release.
        local pinned
        pinned=$(cd "$module_dir" && go list -mod=readonly -f '{{with .Module}}{{.Version}}{{end}}' "$package")
        [[ "$pinned" == "$version" ]] || { echo "[peers] $name: scripts/peers/versions says $version, ${kind#module:}/go.mod pins $pinned" >&2; exit 1; }
      fi
      (cd "$module_dir" && go build -mod=readonly -trimpath -ldflags "$(ldflags_for "$name")" -o "$staging/$name" "$package")
      ;;
    install)
      GOBIN=$staging go install -trimpath -ldflags "$(ldflags_for "$name")" "$package@$version"
      mv "$staging/$(basename "$package")" "$staging/$name.tmp" 2>/dev/null || true
      [[ -e "$staging/$name.tmp" ]] && mv "$staging/$name.tmp" "$staging/$name"
      ;;
    file)
      local module_dir
      module_dir=$(go mod download -json "$package@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
      [[ -n "$module_dir" && -f "$module_dir/${FILE[$name]}" ]] || { echo "[peers] $name: $package@$version has no ${FILE[$name]}" >&2; exit 1; }
      cp "$module_dir/${FILE[$name]}" "$staging/$name"
      chmod +x "$staging/$name"
      ;;
    *) echo "scripts/peers/versions: $name has an unknown kind $kind" >&2; exit 2 ;;
  esac
  mv "$staging/$name" "$out"
  rm -rf "$staging"
  log "built $name $version in $((SECONDS - started)) s: $out"
}

command -v go >/dev/null 2>&1 || { echo "[peers] Go is needed to build the real parts (Go 1.26 or newer): none on PATH" >&2; exit 1; }

wanted=("$@")
[[ ${#wanted[@]} -eq 0 ]] && wanted=("${ORDER[@]}")
for name in "${wanted[@]}"; do
  [[ -n "${VERSION[$name]:-}" ]] || { echo "[peers] unknown part $name (one of: ${ORDER[*]})" >&2; exit 2; }
done

mkdir -p "$CACHE"
# One builder at a time: two test runs starting together share the cache without racing.
exec 9>"$CACHE/.lock"
flock 9

started=$SECONDS
built=0
for name in "${wanted[@]}"; do
  if [[ ! -x "$(binary_path "$name")" ]]; then
    build "$name"
    built=$((built + 1))
  fi
done
if [[ $built -eq 0 ]]; then
  log "ok: ${#wanted[@]} parts already built in $CACHE"
else
  log "ok: built $built of ${#wanted[@]} parts in $((SECONDS - started)) s ($CACHE)"
fi
