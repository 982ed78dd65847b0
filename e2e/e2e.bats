#!/usr/bin/env bats
# End-to-end tests of the oras-cache policy in Kubewarden's style. They run unchanged with kwctl or
# with the in-repo runner:
#   KWCTL=kwctl bats e2e/e2e.bats
#   KWCTL=target/debug/kwrun POLICY=annotated-policy.wasm bats e2e/e2e.bats
# `make e2e-tests` builds annotated-policy.wasm and picks the runner.

KWCTL=${KWCTL:-kwctl}
POLICY=${POLICY:-$BATS_TEST_DIRNAME/../annotated-policy.wasm}
FIXTURES=$BATS_TEST_DIRNAME/fixtures

# What the response says, as expr(1) patterns (basic regular expressions) matched anywhere in it.
has() { [ "$(expr "$output" : ".*$1.*")" -ne 0 ]; }
lacks() { [ "$(expr "$output" : ".*$1.*")" -eq 0 ]; }
# The evaluation ran (exit 0) and the policy mutated the object, accepted it untouched, or refused it.
mutated() { [ "$status" -eq 0 ] && has '"allowed":true' && has '"patchType":"JSONPatch"'; }
untouched() { [ "$status" -eq 0 ] && has '"allowed":true' && lacks '"patchType":"JSONPatch"'; }
rejected() { [ "$status" -eq 0 ] && has '"allowed":false'; }

# replaying SESSION REQUEST [FLAGS]: a context-aware evaluation whose host calls are answered by
# the recorded session e2e/fixtures/sessions/SESSION.yml.
replaying() {
  local session=$1 request=$2
  shift 2
  evaluate "$request" --allow-context-aware \
    --replay-host-capabilities-interactions "$FIXTURES/sessions/$session.yml" "$@"
}

evaluate() {
  local request=$1
  shift
  run "$KWCTL" run --request-path "$FIXTURES/requests/$request.json" "$@" "$POLICY"
  echo "output = ${output}"
}

@test "hello-world pod of the original project is mutated" {
  replaying cache-ready hello-world-pod
  mutated
  has 'oras-entrypoint is ignored'
}

@test "breakfast job of the original project is mutated" {
  replaying cache-ready breakfast-job
  mutated
}

@test "remote registry pod is mutated without reading a cache" {
  replaying no-lookups remote-registry-pod
  mutated
}

@test "pod without oras annotations is accepted untouched" {
  evaluate no-annotation-pod
  untouched
}

@test "already injected pod is accepted untouched" {
  replaying no-lookups already-injected-pod
  untouched
}

@test "UPDATE and DELETE are never mutated" {
  replaying no-lookups update-pod
  untouched
  replaying no-lookups delete-pod
  untouched
}

@test "container without command is wrapped with its image's ENTRYPOINT and CMD" {
  replaying image-command missing-command-pod
  mutated
}

@test "container without command whose image cannot be read is rejected" {
  replaying image-unreadable missing-command-pod
  rejected
  has 'set command (and args) on the container'
}

@test "missing cache is rejected with its name and namespace" {
  replaying cache-missing missing-cache-pod
  rejected
  has 'OrasCache \\"no-such-cache\\" in namespace \\"default\\" could not be read'
}

@test "without context-aware access the cache lookup is refused" {
  evaluate hello-world-pod
  rejected
  has 'Policy has not been granted access to Kubernetes'
}

@test "context-aware evaluation without a session or a kubeconfig stops, as kwctl does" {
  # kwctl builds a Kubernetes client for --allow-context-aware unless a session is replayed, and
  # kube-rs finds none without KUBECONFIG, ~/.kube/config or an in-cluster service account.
  [ ! -e /var/run/secrets/kubernetes.io/serviceaccount/namespace ] || skip "inside a cluster"
  run env -u KUBECONFIG HOME="$BATS_TEST_TMPDIR" "$KWCTL" run \
    --request-path "$FIXTURES/requests/hello-world-pod.json" --allow-context-aware "$POLICY"
  echo "output = ${output}"
  [ "$status" -ne 0 ]
  has 'failed to infer config'
}

@test "contextAware false falls back to the cache's service address" {
  evaluate hello-world-pod --settings-path "$FIXTURES/settings/no-context-aware.json"
  mutated
}

@test "an empty annotation value is rejected" {
  replaying no-lookups empty-value-pod
  rejected
  has 'output-uri is empty'
}

@test "several containers without a container annotation wrap the first, with a warning" {
  replaying cache-ready several-containers-pod
  mutated
  has 'oras-cache wraps the first'
}

@test "a registry outside allowedRegistries is rejected" {
  evaluate remote-registry-pod --settings-json '{"allowedRegistries": ["registry.example.org"]}'
  rejected
  has 'is not allowed by the policy'
}

@test "invalid settings are refused" {
  evaluate no-annotation-pod --settings-path "$FIXTURES/settings/invalid-pull-policy.json"
  [ "$status" -ne 0 ]
  has 'Provided settings are not valid'
}

# Path annotations are paths: a value that would read as one of the agent's flags, the whole
# filesystem, or the agent's own volume is refused at admission, naming the key (issue 16).
reject_path() {
  local request=$1 key=$2 reason=$3
  evaluate "$request"
  rejected
  has "annotation oras.converged-computing.github.io/$key: .*$reason"
}

@test "output-path --push-on-failure is refused as a flag" {
  reject_path output-path-flag-pod output-path 'would read as a flag'
}

@test "output-path -- is refused as a flag" {
  reject_path output-path-separator-pod output-path 'would read as a flag'
}

@test "input-path --no-unpack is refused as a flag" {
  reject_path input-path-flag-pod input-path 'would read as a flag'
}

@test "output-path / is refused as the whole filesystem" {
  reject_path output-path-root-pod output-path 'is the whole filesystem'
}

@test "output-path under /mnt/oras is refused as the agent's volume" {
  reject_path output-path-share-pod output-path 'the agent.s own volume'
}

@test "input-path /mnt//oras is refused as the agent's volume" {
  reject_path input-path-share-pod input-path 'the agent.s own volume'
}

@test "output-pipe under /mnt/oras is refused as the agent's volume" {
  reject_path output-pipe-share-pod output-pipe 'the agent.s own volume'
}

# Artifacts as volumes: the ORAS CSI driver's inline volumes, served by the policy (issue 13).

@test "the seed's singularity pod gets an emptyDir and the oras-volumes init container" {
  replaying no-mirrors singularity-volume-pod
  mutated
}

@test "the seed's java pod gets an emptyDir and the oras-volumes init container" {
  replaying no-mirrors java-volume-pod
  mutated
}

@test "a Job template's artifact volume is served like a pod's" {
  replaying no-mirrors volume-job
  mutated
}

@test "a volume relative to the pod's cache reads the cache" {
  replaying cache-ready volume-relative-to-cache-pod
  mutated
}

@test "pullalways, insecure and unknown attributes are warnings" {
  replaying no-mirrors volume-options-pod
  [ "$status" -eq 0 ]
  has '"allowed":true'
  has 'oras.options.pullalways.* has no effect'
  has 'oras.options.insecure.* is ignored'
  has 'oras.options.surprise.* is not known'
}

@test "a volume without oras.artifact.reference is rejected" {
  evaluate volume-missing-reference-pod
  rejected
  has 'oras-inline.*: oras.artifact.reference is missing'
}

@test "a volume with a malformed reference is rejected" {
  evaluate volume-malformed-reference-pod
  rejected
  has 'oras.artifact.reference is not a full reference'
}

@test "a volume named like oras-cache's own is rejected" {
  evaluate volume-share-name-pod
  rejected
  has "name is the name of oras-cache's own volume"
}

@test "a volume from a registry outside allowedRegistries is rejected" {
  evaluate singularity-volume-pod --settings-path "$FIXTURES/settings/allowed-registries.json"
  rejected
  has 'which the policy does not allow'
}

@test "volumeDrivers [] leaves CSI volumes to a real driver" {
  evaluate singularity-volume-pod --settings-path "$FIXTURES/settings/no-volume-drivers.json"
  untouched
}

# Pulls through the namespace's mirror (issue 14): the OrasCache list is a replayed answer.

@test "an artifact volume from ghcr.io is pulled through the namespace's mirror" {
  replaying ghcr-mirror mirrored-volume-pod
  mutated
  has 'from ghcr.io goes through the mirror OrasCache'
}

@test "inputs from ghcr.io go through the mirror, the output is pushed to ghcr.io" {
  replaying ghcr-mirror mirrored-input-pod
  mutated
  has 'pulling the inputs from ghcr.io goes through the mirror OrasCache'
}
