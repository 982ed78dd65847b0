#!/usr/bin/env bash
# `make demo`: the three-step workflow of examples/workflow/ end to end on this machine.
# Builds the parts, starts a loopback registry as the namespace's OrasCache, admits each step through
# the annotated policy with kwrun (two Jobs with annotations, then a Pod that mounts step 2's output
# the ORAS CSI way), runs the mutated pods with podman, and pulls the result with oras-py. Cleans up pods, images and the registry on exit, failure or Ctrl-C.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

demo_workdir
trap demo_cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

started=$SECONDS
demo_build
demo_start_registry
demo_settings

say "step 1: Job 'produce' writes results/ and pushes it as workflow/results:step1"
demo_admit "$ORAS_ROOT/examples/workflow/step1-produce.yaml" produce
demo_run_pod produce || fail "step 1 failed (see the logs above)"
demo_tag_exists workflow/results step1 || fail "step 1 pushed no workflow/results:step1"

say "step 2: Job 'consume' pulls workflow/results:step1, summarises it, pushes workflow/summary:step2"
demo_admit "$ORAS_ROOT/examples/workflow/step2-consume.yaml" consume
demo_run_pod consume || fail "step 2 failed (see the logs above)"

say "step 3: Pod 'show', written the ORAS CSI driver's way (no oras annotation), mounts workflow/summary:step2 read-only"
demo_localize "$ORAS_ROOT/examples/workflow/step3-mount.yaml" "$DEMO_WORK/step3-mount.yaml"
DEMO_LOOKUPS=0 DEMO_LIST=1 demo_admit "$DEMO_WORK/step3-mount.yaml" show
demo_run_pod show || fail "step 3 failed (see the logs above)"

say "pulling $REGISTRY/workflow/summary:step2 with oras-py"
demo_pull "$REGISTRY/workflow/summary:step2" "$DEMO_WORK/pulled"
say "what step 2 wrote (summary.txt):"
cat "$DEMO_WORK/pulled/summary.txt"
grep -q '^total: 42$' "$DEMO_WORK/pulled/summary.txt" || fail "summary.txt does not hold the expected total"
say "demo finished in $((SECONDS - started)) s"
