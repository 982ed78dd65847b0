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
# policy's oras-volumes init container); volume-shaped is volume.yaml against a second registry
# behind a link shaped to BENCH_SHAPED_RATE (tc's rate syntax, default 1gbit): that registry runs
# in a network namespace of its own, reached over a veth pair with a tbf qdisc on each end (the
# pods run on the host network), so its transfer is not loopback-fast. The link's own speed is
# measured once with curl (OUT_DIR/shaped.json).
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

SHAPED_RATE=${BENCH_SHAPED_RATE:-1gbit}
# The shaped link (volume-shaped): names of this run only, removed on exit.
SHAPED_NS=oras-bench-$$
SHAPED_HOST_IF=orb$$h
SHAPED_NS_IF=orb$$n
SHAPED_REGISTRY=

shaped_cleanup() {
  if [ -n "${SHAPED_PID:-}" ]; then
    kill "$SHAPED_PID" 2>/dev/null || true
    while kill -0 "$SHAPED_PID" 2>/dev/null; do sleep 0.1; done
  fi
  # Removing the namespace removes the veth pair (both ends) and its qdiscs.
  ip netns del "$SHAPED_NS" 2>/dev/null || true
}

bench_cleanup() {
  shaped_cleanup
  demo_cleanup
}

# A registry (oras-test-registry, listening on the namespace's own loopback) in a network namespace,
# reached from the host at 10.231.N.2 over a veth pair shaped to $SHAPED_RATE in both directions
# (tc-tbf(8)); inside the namespace a DNAT rule hands 10.231.N.2:PORT to its 127.0.0.1:PORT (which
# needs route_localnet). Sets SHAPED_REGISTRY.
start_shaped_registry() {
  local dir=$DEMO_WORK/shaped-registry net
  mkdir -p "$dir"
  # A /24 of 10.231.0.0/16 that no interface of this host uses yet.
  for net in $(seq $(($$ % 200)) 255) $(seq 0 $(($$ % 200))); do
    ip -o addr show | grep -q " 10\.231\.$net\." || break
  done
  ip netns add "$SHAPED_NS"
  ip link add "$SHAPED_HOST_IF" type veth peer name "$SHAPED_NS_IF"
  ip link set "$SHAPED_NS_IF" netns "$SHAPED_NS"
  ip addr add "10.231.$net.1/24" dev "$SHAPED_HOST_IF"
  ip link set "$SHAPED_HOST_IF" up
  ip -n "$SHAPED_NS" addr add "10.231.$net.2/24" dev "$SHAPED_NS_IF"
  ip -n "$SHAPED_NS" link set "$SHAPED_NS_IF" up
  ip -n "$SHAPED_NS" link set lo up
  # burst: 256 KiB, about 2 ms at 1 Gbit/s; with it curl measured the link at about 950 Mbit/s.
  tc qdisc add dev "$SHAPED_HOST_IF" root tbf rate "$SHAPED_RATE" burst 256kb latency 50ms
  tc -n "$SHAPED_NS" qdisc add dev "$SHAPED_NS_IF" root tbf rate "$SHAPED_RATE" burst 256kb latency 50ms
  ip netns exec "$SHAPED_NS" sysctl -q -w net.ipv4.conf.all.route_localnet=1 "net.ipv4.conf.$SHAPED_NS_IF.route_localnet=1"
  ip netns exec "$SHAPED_NS" iptables -t nat -A PREROUTING -d "10.231.$net.2" -p tcp -j DNAT --to-destination 127.0.0.1
  ip netns exec "$SHAPED_NS" "$TEST_REGISTRY" >"$dir/info.json" 2>"$dir/log" 3>&- &
  SHAPED_PID=$!
  until [ -s "$dir/info.json" ]; do
    kill -0 "$SHAPED_PID" 2>/dev/null || { cat "$dir/log" >&2; fail "the shaped oras-test-registry did not start"; return 1; }
    sleep 0.1
  done
  SHAPED_REGISTRY=10.231.$net.2:$(jq -r .address "$dir/info.json" | sed 's/.*://')
  say "started a registry behind a link shaped to $SHAPED_RATE (network namespace $SHAPED_NS) on $SHAPED_REGISTRY"
}

demo_workdir
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$OUT"

demo_build >&2
demo_start_registry >&2
case " ${KINDS[*]} " in
  *" volume-shaped "*) start_shaped_registry >&2 ;;
esac
demo_settings

BAKED_IMAGE=localhost/oras-bench-volume-baked:$DEMO_TAG
case " ${KINDS[*]} " in
  *" injected "*)
    printf 'the small input\n' > "$DEMO_WORK/input.txt"
    (cd "$DEMO_WORK" && ORAS_AGENT_QUIET=1 "$AGENT_BIN" push --plain-http "$REGISTRY/bench/pod-input:v1" input.txt >/dev/null)
    ;;
esac
case " ${KINDS[*]} " in
  *" volume "* | *" volume-baked "* | *" volume-shaped "*)
    # One file of random bytes: the artifact of volume.yaml and the extra layer of the baked image.
    ctx=$DEMO_WORK/volume-ctx
    mkdir -p "$ctx"
    head -c $((VOLUME_MIB << 20)) /dev/urandom > "$ctx/big.bin"
    (cd "$ctx" && ORAS_AGENT_QUIET=1 "$AGENT_BIN" push --plain-http "$REGISTRY/bench/volume:v1" big.bin >/dev/null)
    if [ -n "$SHAPED_REGISTRY" ]; then
      (cd "$ctx" && ORAS_AGENT_QUIET=1 "$AGENT_BIN" push --plain-http "$SHAPED_REGISTRY/bench/volume:v1" big.bin >/dev/null)
      # The link's own speed: curl's GET of the same blob over it, three times.
      blob=sha256:$(sha256sum "$ctx/big.bin" | cut -d' ' -f1)
      for _ in 1 2 3; do
        curl -fsS -o /dev/null -w '%{time_total} %{size_download}\n' "http://$SHAPED_REGISTRY/v2/bench/volume/blobs/$blob"
      done | jq -R -s --arg rate "$SHAPED_RATE" \
        '{rate: $rate, curl: [split("\n")[] | select(length > 0) | split(" ") | {seconds: (.[0] | tonumber), bytes: (.[1] | tonumber)}]}' \
        > "$OUT/shaped.json"
    fi
    cp "$(command -v busybox)" "$ctx/busybox"
    say "building $BAKED_IMAGE with buildah (benches/pod/volume-baked.Dockerfile)" >&2
    buildah bud -q --layers=false -f "$ROOT/benches/pod/volume-baked.Dockerfile" -t "$BAKED_IMAGE" "$ctx" >/dev/null
    demo_track images "$BAKED_IMAGE"
    ;;
esac
for kind in "${KINDS[@]}"; do
  if [ "$kind" = volume-shaped ]; then
    REGISTRY=$SHAPED_REGISTRY demo_localize "$ROOT/benches/pod/volume.yaml" "$DEMO_WORK/$kind.localized.yaml"
  else
    demo_localize "$ROOT/benches/pod/$kind.yaml" "$DEMO_WORK/$kind.localized.yaml"
  fi
  sed -e "s|localhost/oras-demo-busybox:bench|$BUSYBOX_IMAGE|" \
    -e "s|localhost/oras-bench-volume-baked:bench|$BAKED_IMAGE|" \
    "$DEMO_WORK/$kind.localized.yaml" > "$DEMO_WORK/$kind.yaml"
done

run_one() {
  local kind=$1 name=$2 keep=$3
  if [ "$kind" = volume ] || [ "$kind" = volume-shaped ]; then
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
    if [ "$kind" = volume ] || [ "$kind" = volume-shaped ]; then
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
