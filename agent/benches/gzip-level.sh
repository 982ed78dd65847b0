#!/usr/bin/env bash
# Measures the gzip level of directory layers: packs and pushes the same directory at several
# levels (ORAS_AGENT_GZIP_LEVEL) to a throwaway local registry and prints time and layer size.
# Usage: agent/benches/gzip-level.sh [path/to/oras-agent] (default: the musl release build).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
AGENT=${1:-${CARGO_TARGET_DIR:-$ROOT/target}/x86_64-unknown-linux-musl/release/oras-agent}
WORK=$(mktemp -d)
# The registry is test-support's oras-test-registry (the tests' configuration); SIGTERM stops it
# and removes its storage.
REGISTRY_CMD=${TEST_REGISTRY:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/oras-test-registry}
[ -n "${TEST_REGISTRY:-}" ] || cargo build -q --manifest-path "$ROOT/Cargo.toml" -p oras-test-support --bin oras-test-registry
trap 'kill "${REGISTRY_PID:-}" 2>/dev/null || true; wait; rm -rf "$WORK"' EXIT
"$REGISTRY_CMD" >"$WORK/registry.json" 2>"$WORK/registry.log" &
REGISTRY_PID=$!
until [ -s "$WORK/registry.json" ]; do
  kill -0 "$REGISTRY_PID" 2>/dev/null || { cat "$WORK/registry.log" >&2; exit 1; }
  sleep 0.1
done
REGISTRY=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["address"])' <"$WORK/registry.json")

# A step's typical output: many small text files and a few large CSV files.
mkdir -p "$WORK/data/out"
python3 - "$WORK/data/out" <<'PY'
import os, random, sys
root = sys.argv[1]
random.seed(7)
for d in range(50):
    os.makedirs(f"{root}/d{d}", exist_ok=True)
    for f in range(100):
        with open(f"{root}/d{d}/f{f}.txt", "w") as fh:
            fh.write("".join(f"line {i} value {random.random():.6f}\n" for i in range(40)))
for n in range(4):
    with open(f"{root}/table{n}.csv", "w") as fh:
        for i in range(400000):
            fh.write(f"{i},{random.randint(0, 10**6)},{random.random():.8f},sample-{i % 97}\n")
PY
echo "input: $(du -sh "$WORK/data/out" | cut -f1) in $(find "$WORK/data/out" -type f | wc -l) files"
printf '%-6s %-10s %s\n' level time layer_bytes
for level in 0 1 3 6 9; do
  start=$(date +%s%N)
  (cd "$WORK/data" && ORAS_AGENT_QUIET=1 ORAS_AGENT_GZIP_LEVEL=$level "$AGENT" push --plain-http \
    "$REGISTRY/bench/gzip:l$level" out >/dev/null)
  end=$(date +%s%N)
  size=$(curl -fs -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$REGISTRY/v2/bench/gzip/manifests/l$level" | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["size"])')
  printf '%-6s %-10s %s\n' "$level" "$(( (end - start) / 1000000 ))ms" "$size"
done
