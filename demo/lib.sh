# Functions shared by `make demo` (demo/run.sh) and its test (demo/demo.bats).
# Source it from bash; it needs the repo's root in ORAS_ROOT (set below when unset).
# shellcheck shell=bash

ORAS_ROOT=${ORAS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ORAS_ROOT/demo/containers.conf}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ORAS_ROOT/target}
# oras-py and pyyaml are in the project's Python environment (scripts/bootstrap.sh makes it).
export PATH=${ORAS_VENV:-$ORAS_ROOT/.venv}/bin:$PATH
# The debug build: `make test` builds it anyway, and the compiled module is cached between runs.
KWRUN=${KWRUN:-$CARGO_TARGET_DIR/debug/kwrun}
TEST_REGISTRY=${TEST_REGISTRY:-$CARGO_TARGET_DIR/debug/oras-test-registry}
AGENT_BIN=${AGENT_BIN:-$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release/oras-agent}
POLICY=${POLICY:-$ORAS_ROOT/annotated-policy.wasm}
ADMISSION="python3 $ORAS_ROOT/demo/admission.py"
# Images the demo builds; a run's own tag keeps parallel runs apart and lets cleanup remove exactly them.
DEMO_TAG=${DEMO_TAG:-demo}
AGENT_IMAGE=localhost/oras-agent:$DEMO_TAG
BUSYBOX_IMAGE=localhost/oras-demo-busybox:$DEMO_TAG
NOSHELL_IMAGE=localhost/oras-demo-noshell:$DEMO_TAG
CACHE_NAME=orascache-sample
NAMESPACE=default

say() { printf '\n==> %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; return 1; }

# demo_workdir: a scratch directory for this run, removed by demo_cleanup.
demo_workdir() {
  DEMO_WORK=$(mktemp -d "${TMPDIR:-/tmp}/oras-demo.XXXXXX")
  export DEMO_WORK
  # Pod names carry the run's id, so that two runs on one machine never meet.
  DEMO_RUN_ID=${DEMO_WORK##*.}
  DEMO_RUN_ID=${DEMO_RUN_ID,,}
  # What cleanup must remove is kept in files, so that it survives bats' separate processes.
  : > "$DEMO_WORK/pods"
  : > "$DEMO_WORK/images"
}

demo_track() { echo "$2" >> "$DEMO_WORK/$1"; }

demo_build() {
  say "building the policy (annotated), kwrun, the static agent and oras-test-registry"
  make -C "$ORAS_ROOT" --no-print-directory annotated-policy.wasm kwrun agent
  cargo build -q --manifest-path "$ORAS_ROOT/Cargo.toml" -p oras-test-support --bin oras-test-registry
  say "building images with buildah: $AGENT_IMAGE (agent/Dockerfile), $BUSYBOX_IMAGE"
  demo_image "$AGENT_IMAGE" "$ORAS_ROOT/agent/Dockerfile" "$AGENT_BIN" oras-agent
  demo_image "$BUSYBOX_IMAGE" "$ORAS_ROOT/demo/busybox.Dockerfile" "$(command -v busybox)" busybox
}

# demo_image TAG DOCKERFILE FILE NAME: build TAG with buildah from a context holding FILE as NAME.
demo_image() {
  local tag=$1 dockerfile=$2 file=$3 name=$4
  local ctx
  ctx=$(mktemp -d "$DEMO_WORK/image-ctx.XXXXXX")
  cp "$file" "$ctx/$name"
  buildah bud -q --layers=false -f "$dockerfile" -t "$tag" "$ctx" >/dev/null
  demo_track images "$tag"
}

# demo_build_noshell: an image whose only file is a static program and that declares its
# ENTRYPOINT/CMD, so the policy must read them from the image config and the agent must wrap it
# without a shell.
demo_build_noshell() {
  demo_image "$NOSHELL_IMAGE" "$ORAS_ROOT/demo/noshell.Dockerfile" "$(command -v busybox)" busybox
}

# demo_image_config IMAGE OUT: what Kubewarden's v1/oci_manifest_config capability answers for IMAGE.
demo_image_config() {
  local image=$1 out=$2
  local manifest config
  manifest=$(skopeo inspect --raw "containers-storage:$image")
  config=$(skopeo inspect --config --raw "containers-storage:$image")
  jq -n --argjson manifest "$manifest" --argjson config "$config" \
    --arg digest "sha256:$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)" \
    '{manifest: $manifest, digest: $digest, config: $config}' > "$out"
}

# demo_start_registry: the namespace's OrasCache, a loopback registry started by test-support's
# oras-test-registry (the configuration the Rust tests use); it prints one JSON line once the
# registry answers, and stops and removes its storage on SIGTERM (demo_cleanup).
demo_start_registry() {
  local dir=$DEMO_WORK/registry pid
  mkdir -p "$dir"
  # 3>&- : bats waits on fd 3 of background processes; the registry must not hold it.
  "$TEST_REGISTRY" >"$dir/info.json" 2>"$dir/log" 3>&- &
  pid=$!
  echo "$pid" > "$dir/pid"
  until [ -s "$dir/info.json" ]; do
    kill -0 "$pid" 2>/dev/null || { cat "$dir/log" >&2; fail "oras-test-registry did not start"; return 1; }
    sleep 0.1
  done
  REGISTRY=$(jq -r .address "$dir/info.json")
  echo "$REGISTRY" > "$dir/address"
  say "started the loopback OCI registry (the namespace's OrasCache '$CACHE_NAME') on $REGISTRY"
}

demo_settings() {
  cat > "$DEMO_WORK/settings.json" <<JSON
{"agentImage": "$AGENT_IMAGE", "agentImagePullPolicy": "Never"}
JSON
}

# demo_admit MANIFEST NAME [IMAGE-CONFIG...]: evaluate MANIFEST through the annotated policy with
# kwrun (the OrasCache lookup answered by a replayed session), and write the podman Pod for it to
# $DEMO_WORK/NAME.pod.yaml.
demo_admit() {
  local manifest=$1 name=$2
  shift 2
  local images=()
  local spec
  for spec in "$@"; do images+=(--image "$spec"); done
  $ADMISSION request "$manifest" --namespace "$NAMESPACE" > "$DEMO_WORK/$name.request.json"
  # A pod that names no cache (an artifact volume with a full reference) looks up no cache
  # (DEMO_LOOKUPS=0) but lists the namespace's caches to find a mirror (DEMO_LIST=1).
  local list=()
  [ "${DEMO_LIST:-0}" = 1 ] && list=(--list)
  $ADMISSION session "$DEMO_WORK/$name.session.yml" --cache "$CACHE_NAME" --namespace "$NAMESPACE" \
    --address "$REGISTRY" --lookups "${DEMO_LOOKUPS:-1}" "${list[@]}" "${images[@]}"
  say "kwrun: evaluating $(basename "$manifest") through the policy"
  "$KWRUN" run --request-path "$DEMO_WORK/$name.request.json" \
    --settings-path "$DEMO_WORK/settings.json" --allow-context-aware \
    --replay-host-capabilities-interactions "$DEMO_WORK/$name.session.yml" \
    "$POLICY" > "$DEMO_WORK/$name.response.json"
  jq -c '{allowed, patchType, warnings, status}' "$DEMO_WORK/$name.response.json"
  $ADMISSION apply "$manifest" "$DEMO_WORK/$name.response.json" > "$DEMO_WORK/$name.mutated.yaml"
  $ADMISSION pod "$DEMO_WORK/$name.mutated.yaml" "$name-$DEMO_RUN_ID" > "$DEMO_WORK/$name.pod.yaml"
}

# demo_run_pod NAME: run the Pod with podman kube play, wait for it, print each container's log and
# exit status. Sets POD_EXIT to the application container's exit code; returns non-zero when any
# container failed.
demo_run_pod() {
  local name=$1
  local pod=$name-$DEMO_RUN_ID
  say "podman kube play: running pod $pod"
  demo_track pods "$pod"
  # podman removes init containers once they ran, and logs that at error level: not an error.
  # A failing init container makes kube play itself fail; its logs are still shown below. Its
  # stderr goes to a file, not a pipe: a container process left behind by a failed init container
  # would hold a pipe open (and, with it, bats' fd 3) for ever; 3>&- keeps podman's children off
  # bats' fd 3 too.
  local played=1
  podman kube play "$DEMO_WORK/$name.pod.yaml" >/dev/null 2>"$DEMO_WORK/$name.play.log" 3>&- ||
    { played=0; echo "podman kube play $name.pod.yaml failed"; }
  grep -v 'level=error msg="Removing container' "$DEMO_WORK/$name.play.log" >&2 || true
  # Done when nothing runs and nothing waits to start, or when a container failed (a failed init
  # container leaves the application "created" for ever). A pod whose app hangs must not hang the
  # demo: ten minutes is far more than any step here needs.
  if [ "$played" = 1 ]; then
    local deadline=$((SECONDS + 600)) states
    while :; do
      # shellcheck disable=SC2046
      states=$(podman inspect --format '{{.Name}} {{.State.Status}} {{.State.ExitCode}}' \
        $(podman ps -a -q --filter "pod=$pod") 2>/dev/null | grep -v -- '-infra ' || true)
      if ! grep -qE ' (running|created|configured|initialized)' <<<"$states"; then break; fi
      if grep -E ' exited ' <<<"$states" | grep -qvE ' 0$'; then break; fi
      [ $SECONDS -lt $deadline ] || { fail "pod $pod did not finish within 10 minutes"; return 1; }
      sleep 0.5
    done
  fi
  local failed=$((1 - played)) container code
  while read -r container _; do
    if [ "$(podman inspect "$container" --format '{{.State.Status}}')" = created ]; then
      printf -- '--- %s (never started)\n' "$container"
      failed=1
      continue
    fi
    code=$(podman inspect "$container" --format '{{.State.ExitCode}}')
    printf -- '--- %s (exit %s)\n' "$container" "$code"
    podman logs "$container" 2>&1 | sed 's/^/    /'
    [ "$code" = 0 ] || failed=1
    case $container in "$pod-oras" | "$pod-oras-init" | "$pod-oras-volumes") ;; *) POD_EXIT=$code ;; esac
  done < <(podman ps -a --filter "pod=$pod" --format '{{.Names}}' | grep -v -- '-infra$')
  return $failed
}

# demo_localize MANIFEST OUT [REFERENCE]: MANIFEST with its registry pointed at this run's loopback
# registry (the cache's Service address, or the placeholder REGISTRY) and the placeholder REFERENCE
# replaced by REFERENCE.
demo_localize() {
  local manifest=$1 out=$2 reference=${3:-}
  sed -e "s|orascache-sample.default.svc.cluster.local:5000|$REGISTRY|g" \
    -e "s|\"REGISTRY/|\"$REGISTRY/|g" -e "s|\"REFERENCE\"|\"$reference\"|g" "$manifest" > "$out"
}

# demo_pull REF DIR: pull an artifact with oras-py, the outside client.
demo_pull() {
  local ref=$1 dir=$2
  mkdir -p "$dir"
  python3 - "$ref" "$dir" <<'PY'
import sys
import oras.client
ref, outdir = sys.argv[1], sys.argv[2]
client = oras.client.OrasClient(insecure=True)
for path in client.pull(target=ref, outdir=outdir):
    print(path)
PY
}

demo_tag_exists() {
  local repo=$1 tag=$2 tags
  # An unknown repository answers 404: no tag.
  tags=$(curl -fsS "http://$REGISTRY/v2/$repo/tags/list" 2>/dev/null) || return 1
  jq -e --arg t "$tag" '(.tags // []) | index($t) != null' <<<"$tags" >/dev/null
}

# demo_resume: in a later process (a bats test), find the registry this run started.
demo_resume() {
  REGISTRY=$(cat "$DEMO_WORK/registry/address")
  DEMO_RUN_ID=${DEMO_WORK##*.}
  DEMO_RUN_ID=${DEMO_RUN_ID,,}
}

demo_cleanup() {
  [ -n "${DEMO_WORK:-}" ] && [ -d "$DEMO_WORK" ] || return 0
  DEMO_RUN_ID=${DEMO_WORK##*.}
  DEMO_RUN_ID=${DEMO_RUN_ID,,}
  local pod image pid
  while read -r pod; do podman pod rm -f "$pod" >/dev/null 2>&1 || true; done < "$DEMO_WORK/pods"
  # The pods' emptyDir volumes (named after their pods by admission.py).
  podman volume ls --format '{{.Name}}' | grep -- "-$DEMO_RUN_ID-" | xargs -r podman volume rm -f >/dev/null 2>&1 || true
  if [ -f "$DEMO_WORK/registry/pid" ]; then
    pid=$(cat "$DEMO_WORK/registry/pid")
    kill "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  while read -r image; do podman rmi -f "$image" >/dev/null 2>&1 || true; done < "$DEMO_WORK/images"
  rm -rf "$DEMO_WORK"
}
