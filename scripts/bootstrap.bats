#!/usr/bin/env bats
# scripts/bootstrap.sh on a Python that refuses `pip install` (PEP 668's EXTERNALLY-MANAGED marker,
# which Debian 12 ships in /usr/lib/python3.11). The Python tools must land in the project's
# virtual environment and the system Python must stay untouched.

ROOT=$BATS_TEST_DIRNAME/..

setup() {
  WORK=$(mktemp -d)
}

teardown() {
  rm -rf "$WORK"
}

# A stand-in for Debian's python3: a copy-free "system" Python is not possible with a venv (pip
# never refuses inside one), so the marker goes next to a real interpreter's standard library.
externally_managed_python() {
  local python
  for python in /usr/bin/python3 "$(command -v python3)"; do
    local stdlib
    stdlib=$("$python" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))') || continue
    if [ -f "$stdlib/EXTERNALLY-MANAGED" ]; then
      echo "$python"
      return 0
    fi
  done
  return 1
}

@test "bootstrap puts the Python tools in a project environment when the system Python is externally managed" {
  python=$(externally_managed_python) || skip "no externally managed Python on this machine (Debian's python3 has one)"
  # The condition the test is about: pip refuses the system Python.
  run "$python" -m pip install --dry-run oras
  [ "$status" -ne 0 ]
  [ $(expr "$output" : '.*externally-managed-environment.*') -ne 0 ]

  run env PYTHON="$python" ORAS_VENV="$WORK/venv" "$ROOT/scripts/bootstrap.sh"
  echo "$output"
  [ "$status" -eq 0 ]
  "$WORK/venv/bin/python3" -c 'import oras.client, yaml, jsonpatch'

  # Idempotent: a second run installs nothing.
  run env PYTHON="$python" ORAS_VENV="$WORK/venv" "$ROOT/scripts/bootstrap.sh"
  [ "$status" -eq 0 ]
  [ $(expr "$output" : '.*installing.*') -eq 0 ]
  [ $(expr "$output" : '.*creating.*') -eq 0 ]
}
