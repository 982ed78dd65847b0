#!/usr/bin/env bash
# Pod overhead (make bench, benches/bench.py): runs pods of the given kinds (benches/pod/KIND.yaml)
# with podman kube play through demo/lib.sh, RUNS times each (interleaved, after one unrecorded
# warm-up run of each), and keeps for each run podman's inspect of every container of the pod and
# the app's log, whose clock marks bench.py reads. Init containers are not among them: podman
# removes them once they ran; for the volume kind, podman's events of its oras-volumes init
# container are kept instead.
# Kinds: plain and injected (the pod stage: the same small step without and with the policy's
# injection); volume-baked and volume (the volume stage: a BENCH_VOLUME_MIB MiB file, default 100,
# already in the app's image, or an artifact in an inline csi.oras.land volume filled by the
# policy's oras-volumes init container).
# Usage: benches/pod.sh OUT_DIR RUNS [KIND...]   (default kinds: plain injected; KWRUN, AGENT_BIN
# and POLICY as demo/lib.sh takes them)
set -euo pipefail
OUT=$1
RUNS=$2
shift 2
KINDS=("$@")
[ ${#KINDS[@]} -gt 0 ] || KINDS=(plain injected)
VOLUME_MIB=${BENCH_VOLUME_MIB:-100}
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

BAKED_IMAGE=localhost/oras-bench-volume-baked:$DEMO_TAG
case " ${KINDS[*]} " in
  *" injected "*)
    printf 'the small input\n' > "$DEMO_WORK/input.txt"
    (cd "$DEMO_WORK" && ORAS_AGENT_QUIET=1 "$AGENT_BIN" push --plain-http "$REGISTRY/bench/pod-input:v1" input.txt >/dev/null)
    ;;
esac
case " ${KINDS[*]} " in
  *" volume "* | *" volume-baked "*)
    # One file of random bytes: the artifact of volume.yaml and the extra layer of the baked image.
    ctx=$DEMO_WORK/volume-ctx
    mkdir -p "$ctx"
    head -c $((VOLUME_MIB << 20)) /dev/urandom > "$ctx/big.bin"
    (cd "$ctx" && ORAS_AGENT_QUIET=1 "$AGENT_BIN" push --plain-http "$REGISTRY/bench/volume:v1" big.bin >/dev/null)
    cp "$(command -v busybox)" "$ctx/busybox"
    say "building $BAKED_IMAGE with buildah (benches/pod/volume-baked.Dockerfile)" >&2
    buildah bud -q --layers=false -f "$ROOT/benches/pod/volume-baked.Dockerfile" -t "$BAKED_IMAGE" "$ctx" >/dev/null
    demo_track images "$BAKED_IMAGE"
    ;;
esac
for kind in "${KINDS[@]}"; do
  demo_localize "$ROOT/benches/pod/$kind.yaml" "$DEMO_WORK/$kind.localized.yaml"
  sed -e "s|localhost/oras-demo-busybox:bench|$BUSYBOX_IMAGE|" \
    -e "s|localhost/oras-bench-volume-baked:bench|$BAKED_IMAGE|" \
    "$DEMO_WORK/$kind.localized.yaml" > "$DEMO_WORK/$kind.yaml"
done

run_one() {
  local kind=$1 name=$2 keep=$3
  if [ "$kind" = volume ]; then
    # As demo/demo.bats admits its volume pods: a full reference looks up no cache but lists the
    # namespace's caches for a mirror.
    DEMO_LOOKUPS=0 DEMO_LIST=1 demo_admit "$DEMO_WORK/$kind.yaml" "$name" >&2
  else
    demo_admit "$DEMO_WORK/$kind.yaml" "$name" >&2
  fi
  local since
  since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
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
    # What the policy made of the pod (the oras-volumes init container's argv, for the report).
    cp "$DEMO_WORK/$name.mutated.yaml" "$OUT/$name.mutated.yaml"
    if [ "$kind" = volume ]; then
      # The init container is gone: its start and end are in podman's events.
      podman events --stream=false --since "$since" --filter "container=$pod-oras-volumes" \
        --format json > "$OUT/$name.events.json"
    fi
  fi
  podman pod rm -f "$pod" >/dev/null
}

for kind in "${KINDS[@]}"; do run_one "$kind" "bench-$kind-warm" discard; done
for i in $(seq 1 "$RUNS"); do
  for kind in "${KINDS[@]}"; do run_one "$kind" "bench-$kind-$i" keep; done
done
