#!/usr/bin/env bash
# Pod overhead (make bench, benches/bench.py): runs the same small step as a plain pod and as a pod
# injected by the policy, with podman kube play through demo/lib.sh, RUNS times each (interleaved,
# after one unrecorded warm-up pair), and keeps for each run podman's inspect of every container
# of the pod and the app's log, whose clock marks bench.py reads.
# Usage: benches/pod.sh OUT_DIR RUNS   (KWRUN, AGENT_BIN and POLICY as demo/lib.sh takes them)
set -euo pipefail
OUT=$1
RUNS=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Images of this run only, so that cleanup removes exactly them.
export DEMO_TAG=${DEMO_TAG:-bench-$$}
# shellcheck source=../demo/lib.sh
source "$ROOT/demo/lib.sh"

demo_workdir
trap demo_cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$OUT"

demo_build >&2
demo_start_registry >&2
demo_settings

printf 'the small input\n' > "$DEMO_WORK/input.txt"
(cd "$DEMO_WORK" && ORAS_AGENT_QUIET=1 "$AGENT_BIN" push --plain-http "$REGISTRY/bench/pod-input:v1" input.txt >/dev/null)
for kind in plain injected; do
  sed "s|localhost/oras-demo-busybox:bench|$BUSYBOX_IMAGE|" "$ROOT/benches/pod/$kind.yaml" > "$DEMO_WORK/$kind.yaml"
done

run_one() {
  local kind=$1 name=$2 keep=$3
  demo_admit "$DEMO_WORK/$kind.yaml" "$name" >&2
  demo_run_pod "$name" >&2 || fail "pod $name failed (see its logs above)"
  if [ "$kind" = injected ]; then
    demo_tag_exists bench/pod-output v1 || fail "pod $name pushed no bench/pod-output:v1"
  fi
  # demo/lib.sh names the pod after the run, so parallel runs do not collide.
  local pod=$name-$DEMO_RUN_ID
  if [ "$keep" = keep ]; then
    local containers
    containers=$(podman ps -a --filter "pod=$pod" --format '{{.Names}}')
    [ -n "$containers" ] || fail "pod $pod has no containers left to inspect"
    # shellcheck disable=SC2086
    podman inspect $containers > "$OUT/$name.inspect.json"
    podman logs "$pod-app" > "$OUT/$name.app.log" 2>&1
  fi
  podman pod rm -f "$pod" >/dev/null
}

run_one plain bench-plain-warm discard
run_one injected bench-injected-warm discard
for i in $(seq 1 "$RUNS"); do
  run_one plain "bench-plain-$i" keep
  run_one injected "bench-injected-$i" keep
done
