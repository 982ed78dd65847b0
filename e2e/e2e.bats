#!/usr/bin/env bats
# End-to-end tests of the oras-cache policy in Kubewarden's style. They run unchanged with kwctl or
# with the in-repo runner:
#   KWCTL=kwctl bats e2e/e2e.bats
#   KWCTL=target/debug/kwrun POLICY=annotated-policy.wasm bats e2e/e2e.bats
# `make e2e-tests` builds annotated-policy.wasm and picks the runner.

KWCTL=${KWCTL:-kwctl}
POLICY=${POLICY:-$BATS_TEST_DIRNAME/../annotated-policy.wasm}
FIXTURES=$BATS_TEST_DIRNAME/fixtures

evaluate() {
  local request=$1
  shift
  run "$KWCTL" run --request-path "$FIXTURES/requests/$request.json" "$@" "$POLICY"
  echo "output = ${output}"
}

@test "hello-world pod of the original project is mutated" {
  evaluate hello-world-pod --allow-context-aware \
    --replay-host-capabilities-interactions "$FIXTURES/sessions/cache-ready.yml"
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":true.*') -ne 0 ]
  [ $(expr "$output" : '.*"patchType":"JSONPatch".*') -ne 0 ]
  [ $(expr "$output" : '.*oras-entrypoint is ignored.*') -ne 0 ]
}

@test "breakfast job of the original project is mutated" {
  evaluate breakfast-job --allow-context-aware \
    --replay-host-capabilities-interactions "$FIXTURES/sessions/cache-ready.yml"
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":true.*') -ne 0 ]
  [ $(expr "$output" : '.*"patchType":"JSONPatch".*') -ne 0 ]
}

@test "remote registry pod is mutated without reading a cache" {
  evaluate remote-registry-pod --allow-context-aware \
    --replay-host-capabilities-interactions "$FIXTURES/sessions/no-lookups.yml"
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":true.*') -ne 0 ]
  [ $(expr "$output" : '.*"patchType":"JSONPatch".*') -ne 0 ]
}

@test "pod without oras annotations is accepted untouched" {
  evaluate no-annotation-pod
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":true.*') -ne 0 ]
  [ $(expr "$output" : '.*"patchType":"JSONPatch".*') -eq 0 ]
}

@test "already injected pod is accepted untouched" {
  evaluate already-injected-pod --allow-context-aware \
    --replay-host-capabilities-interactions "$FIXTURES/sessions/no-lookups.yml"
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":true.*') -ne 0 ]
  [ $(expr "$output" : '.*"patchType":"JSONPatch".*') -eq 0 ]
}

@test "UPDATE and DELETE are never mutated" {
  evaluate update-pod --allow-context-aware \
    --replay-host-capabilities-interactions "$FIXTURES/sessions/no-lookups.yml"
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":true.*') -ne 0 ]
  [ $(expr "$output" : '.*"patchType":"JSONPatch".*') -eq 0 ]
  evaluate delete-pod --allow-context-aware \
    --replay-host-capabilities-interactions "$FIXTURES/sessions/no-lookups.yml"
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":true.*') -ne 0 ]
  [ $(expr "$output" : '.*"patchType":"JSONPatch".*') -eq 0 ]
}

@test "container without command is wrapped with its image's ENTRYPOINT and CMD" {
  evaluate missing-command-pod --allow-context-aware \
    --replay-host-capabilities-interactions "$FIXTURES/sessions/image-command.yml"
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":true.*') -ne 0 ]
  [ $(expr "$output" : '.*"patchType":"JSONPatch".*') -ne 0 ]
}

@test "container without command whose image cannot be read is rejected" {
  evaluate missing-command-pod --allow-context-aware \
    --replay-host-capabilities-interactions "$FIXTURES/sessions/image-unreadable.yml"
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":false.*') -ne 0 ]
  [ $(expr "$output" : '.*set command (and args) on the container.*') -ne 0 ]
}

@test "missing cache is rejected with its name and namespace" {
  evaluate missing-cache-pod --allow-context-aware \
    --replay-host-capabilities-interactions "$FIXTURES/sessions/cache-missing.yml"
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":false.*') -ne 0 ]
  [ $(expr "$output" : '.*OrasCache \\"no-such-cache\\" in namespace \\"default\\" could not be read.*') -ne 0 ]
}

@test "without context-aware access the cache lookup is refused" {
  evaluate hello-world-pod
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":false.*') -ne 0 ]
  [ $(expr "$output" : '.*Policy has not been granted access to Kubernetes.*') -ne 0 ]
}

@test "context-aware evaluation without a session or a kubeconfig stops, as kwctl does" {
  # kwctl builds a Kubernetes client for --allow-context-aware unless a session is replayed, and
  # kube-rs finds none without KUBECONFIG, ~/.kube/config or an in-cluster service account.
  [ ! -e /var/run/secrets/kubernetes.io/serviceaccount/namespace ] || skip "inside a cluster"
  run env -u KUBECONFIG HOME="$BATS_TEST_TMPDIR" "$KWCTL" run \
    --request-path "$FIXTURES/requests/hello-world-pod.json" --allow-context-aware "$POLICY"
  echo "output = ${output}"
  [ "$status" -ne 0 ]
  [ $(expr "$output" : '.*failed to infer config.*') -ne 0 ]
}

@test "contextAware false falls back to the cache's service address" {
  evaluate hello-world-pod --settings-path "$FIXTURES/settings/no-context-aware.json"
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":true.*') -ne 0 ]
  [ $(expr "$output" : '.*"patchType":"JSONPatch".*') -ne 0 ]
}

@test "an empty annotation value is rejected" {
  evaluate empty-value-pod --allow-context-aware \
    --replay-host-capabilities-interactions "$FIXTURES/sessions/no-lookups.yml"
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":false.*') -ne 0 ]
  [ $(expr "$output" : '.*output-uri is empty.*') -ne 0 ]
}

@test "several containers without a container annotation wrap the first, with a warning" {
  evaluate several-containers-pod --allow-context-aware \
    --replay-host-capabilities-interactions "$FIXTURES/sessions/cache-ready.yml"
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":true.*') -ne 0 ]
  [ $(expr "$output" : '.*"patchType":"JSONPatch".*') -ne 0 ]
  [ $(expr "$output" : '.*oras-cache wraps the first.*') -ne 0 ]
}

@test "a registry outside allowedRegistries is rejected" {
  evaluate remote-registry-pod --settings-json '{"allowedRegistries": ["registry.example.org"]}'
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":false.*') -ne 0 ]
  [ $(expr "$output" : '.*is not allowed by the policy.*') -ne 0 ]
}

@test "invalid settings are refused" {
  evaluate no-annotation-pod --settings-path "$FIXTURES/settings/invalid-pull-policy.json"
  [ "$status" -ne 0 ]
  [ $(expr "$output" : '.*Provided settings are not valid.*') -ne 0 ]
}

# Path annotations are paths: a value that would read as one of the agent's flags, the whole
# filesystem, or the agent's own volume is refused at admission, naming the key (issue 16).
reject_path() {
  local request=$1 key=$2 reason=$3
  evaluate "$request"
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":false.*') -ne 0 ]
  [ $(expr "$output" : ".*annotation oras.converged-computing.github.io/$key: .*$reason.*") -ne 0 ]
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
  evaluate singularity-volume-pod
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":true.*') -ne 0 ]
  [ $(expr "$output" : '.*"patchType":"JSONPatch".*') -ne 0 ]
}

@test "the seed's java pod gets an emptyDir and the oras-volumes init container" {
  evaluate java-volume-pod
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":true.*') -ne 0 ]
  [ $(expr "$output" : '.*"patchType":"JSONPatch".*') -ne 0 ]
}

@test "a Job template's artifact volume is served like a pod's" {
  evaluate volume-job
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":true.*') -ne 0 ]
  [ $(expr "$output" : '.*"patchType":"JSONPatch".*') -ne 0 ]
}

@test "a volume relative to the pod's cache reads the cache" {
  evaluate volume-relative-to-cache-pod --allow-context-aware \
    --replay-host-capabilities-interactions "$FIXTURES/sessions/cache-ready.yml"
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":true.*') -ne 0 ]
  [ $(expr "$output" : '.*"patchType":"JSONPatch".*') -ne 0 ]
}

@test "pullalways, insecure and unknown attributes are warnings" {
  evaluate volume-options-pod
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":true.*') -ne 0 ]
  [ $(expr "$output" : '.*oras.options.pullalways.* has no effect.*') -ne 0 ]
  [ $(expr "$output" : '.*oras.options.insecure.* is ignored.*') -ne 0 ]
  [ $(expr "$output" : '.*oras.options.surprise.* is not known.*') -ne 0 ]
}

@test "a volume without oras.artifact.reference is rejected" {
  evaluate volume-missing-reference-pod
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":false.*') -ne 0 ]
  [ $(expr "$output" : '.*oras-inline.*: oras.artifact.reference is missing.*') -ne 0 ]
}

@test "a volume with a malformed reference is rejected" {
  evaluate volume-malformed-reference-pod
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":false.*') -ne 0 ]
  [ $(expr "$output" : '.*oras.artifact.reference is not a full reference.*') -ne 0 ]
}

@test "a volume named like oras-cache's own is rejected" {
  evaluate volume-share-name-pod
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":false.*') -ne 0 ]
  [ $(expr "$output" : ".*name is the name of oras-cache's own volume.*") -ne 0 ]
}

@test "a volume from a registry outside allowedRegistries is rejected" {
  evaluate singularity-volume-pod --settings-path "$FIXTURES/settings/allowed-registries.json"
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":false.*') -ne 0 ]
  [ $(expr "$output" : '.*which the policy does not allow.*') -ne 0 ]
}

@test "volumeDrivers [] leaves CSI volumes to a real driver" {
  evaluate singularity-volume-pod --settings-path "$FIXTURES/settings/no-volume-drivers.json"
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*"allowed":true.*') -ne 0 ]
  [ $(expr "$output" : '.*"patchType":"JSONPatch".*') -eq 0 ]
}
