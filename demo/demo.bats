#!/usr/bin/env bats
# The demo's flow as a test, plus the cases a workflow meets: a failing step, two inputs, and an
# image with no shell whose entrypoint comes from its image config. Real parts only: the annotated
# policy through kwrun, the agent image, podman, Debian's registry, oras-py.

setup_file() {
  source "$BATS_TEST_DIRNAME/lib.sh"
  demo_workdir
  demo_build
  demo_build_noshell
  demo_start_registry
  demo_settings
}

teardown_file() {
  source "$BATS_TEST_DIRNAME/lib.sh"
  demo_cleanup
}

setup() {
  source "$BATS_TEST_DIRNAME/lib.sh"
  demo_resume
}

# step MANIFEST NAME [IMAGE=CONFIG...]: admit MANIFEST through the policy and run its pod, which
# must succeed.
step() {
  demo_admit "$@"
  run demo_run_pod "$2"
  echo "$output"
  [ "$status" -eq 0 ]
}

@test "two-step workflow: step 2 reads step 1's output and its summary is pulled by oras-py" {
  step "$ORAS_ROOT/examples/workflow/step1-produce.yaml" produce
  demo_tag_exists workflow/results step1

  step "$ORAS_ROOT/examples/workflow/step2-consume.yaml" consume

  demo_pull "$REGISTRY/workflow/summary:step2" "$DEMO_WORK/summary"
  run cat "$DEMO_WORK/summary/summary.txt"
  [ "${lines[0]}" = "step 2 read 3 result files:" ]
  [ "${lines[1]}" = "measurement 1: 7" ]
  [ "${lines[3]}" = "measurement 3: 21" ]
  [ "${lines[4]}" = "total: 42" ]

  # Step 3, written the ORAS CSI driver's way, mounts the summary read-only.
  demo_localize "$ORAS_ROOT/examples/workflow/step3-mount.yaml" "$DEMO_WORK/step3-mount.yaml"
  DEMO_LOOKUPS=0 DEMO_LIST=1 demo_admit "$DEMO_WORK/step3-mount.yaml" show
  run demo_run_pod show
  [ "$status" -eq 0 ]
  [[ "$output" == *"total: 42"* ]]
}

@test "a failing step: its exit code reaches the pod and nothing is pushed" {
  demo_admit "$BATS_TEST_DIRNAME/testdata/failing-step.yaml" failing
  run demo_run_pod failing
  [ "$status" -ne 0 ]
  [[ "$output" == *"failing-$DEMO_RUN_ID-app (exit 3)"* ]]
  run demo_tag_exists workflow/failing never
  [ "$status" -ne 0 ]
}

# Uses step 1's output from the first test.
@test "two inputs are both placed under input-path" {
  mkdir -p "$DEMO_WORK/notes"
  echo "second input" > "$DEMO_WORK/notes/notes.txt"
  (cd "$DEMO_WORK/notes" && python3 -c '
import sys, oras.client
oras.client.OrasClient(insecure=True).push(target=sys.argv[1], files=["notes.txt"])' "$REGISTRY/workflow/notes:v1")
  demo_tag_exists workflow/notes v1

  step "$BATS_TEST_DIRNAME/testdata/two-inputs.yaml" two-inputs
  demo_pull "$REGISTRY/workflow/listing:two-inputs" "$DEMO_WORK/listing"
  run cat "$DEMO_WORK/listing/listing.txt"
  [ "${lines[0]}" = "./notes.txt" ]
  [ "${lines[1]}" = "./results/run-1.txt" ]
  [ "${lines[4]}" = "second input" ]
}

@test "an image with no shell and no command runs its image entrypoint under the agent" {
  demo_image_config "$NOSHELL_IMAGE" "$DEMO_WORK/noshell-config.json"
  step "$BATS_TEST_DIRNAME/testdata/noshell.yaml" noshell "$NOSHELL_IMAGE=$DEMO_WORK/noshell-config.json"
  grep -q '/busybox' "$DEMO_WORK/noshell.pod.yaml"
  demo_pull "$REGISTRY/workflow/copied:noshell" "$DEMO_WORK/copied"
  diff <(printf 'measurement 2: 14\n') "$DEMO_WORK/copied/copied/run-2.txt"
}

# Artifacts as volumes: the ORAS CSI seed's two pods, with local images and the loopback registry.

# volume_pod NAME: admit testdata/NAME-volume.yaml (pointed at this run's registry) and run it.
volume_pod() {
  demo_localize "$BATS_TEST_DIRNAME/testdata/$1-volume.yaml" "$DEMO_WORK/$1.yaml"
  DEMO_LOOKUPS=0 DEMO_LIST=1 demo_admit "$DEMO_WORK/$1.yaml" "$1"
  run demo_run_pod "$1"
  echo "$output"
}

@test "the seed's singularity pod sees its single-file artifact read-only at its mount" {
  mkdir -p "$DEMO_WORK/sif"
  echo "Hold me closer... tiny container :) :D" > "$DEMO_WORK/sif/container.sif"
  (cd "$DEMO_WORK/sif" && python3 -c '
import sys, oras.client
oras.client.OrasClient(insecure=True).push(target=sys.argv[1], files=["container.sif"])' "$REGISTRY/singularityhub/github-ci:latest")
  volume_pod singularity
  [ "$status" -eq 0 ]
  [[ "$output" == *"Hold me closer... tiny container"* ]]
  [[ "$output" == *"read-only"* ]]
}

@test "the seed's java pod gets the jar and a directory layer unpacked beside it" {
  mkdir -p "$DEMO_WORK/jar/lib"
  echo "jar bytes" > "$DEMO_WORK/jar/HelloWorldServer.jar"
  echo "a dependency" > "$DEMO_WORK/jar/lib/dependency.txt"
  (cd "$DEMO_WORK/jar" && "$AGENT_BIN" push --plain-http "$REGISTRY/oras-project/hello-world-jar:v1" HelloWorldServer.jar lib)
  volume_pod java
  [ "$status" -eq 0 ]
  [[ "$output" == *"jar bytes"* ]]
  [[ "$output" == *"a dependency"* ]]
}

@test "a missing artifact or digest fails oras-volumes naming the reference, before the app starts" {
  local n=0 reference
  for reference in "$REGISTRY/nothing/here:v1" \
    "$REGISTRY/singularityhub/github-ci@sha256:0000000000000000000000000000000000000000000000000000000000000000"; do
    n=$((n + 1))
    demo_localize "$BATS_TEST_DIRNAME/testdata/missing-volume.yaml" "$DEMO_WORK/missing-$n.yaml" "$reference"
    DEMO_LOOKUPS=0 DEMO_LIST=1 demo_admit "$DEMO_WORK/missing-$n.yaml" "missing-$n"
    run demo_run_pod "missing-$n"
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"$reference"* ]]
    [[ "$output" != *"the app started"* ]]
  done
}
