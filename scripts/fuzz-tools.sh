#!/usr/bin/env bash
# The API fuzzer, schemathesis (PyPI), pinned, in its own virtual environment under .tools/ — kept
# apart from scripts/setup.sh so `make run` never waits for it; `make fuzz` and the fuzz test call
# this first. Idempotent and quiet when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
# The real path: a venv's scripts name their interpreter by the path it was made under, and
# .tools may be a symlink (a worktree sharing another checkout's tools).
VENV=$(realpath -m .tools)/schemathesis
ST=$VENV/bin/st

# Installed means it runs: a venv whose interpreter path is gone is made again.
if [[ "$(cat "$VENV/.version" 2>/dev/null)" == "$SCHEMATHESIS_VERSION" ]] && "$ST" --version >/dev/null 2>&1; then exit 0; fi

PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null || { echo "[fuzz-tools] python3 is needed for schemathesis" >&2; exit 1; }
echo "[fuzz-tools] installing schemathesis $SCHEMATHESIS_VERSION (PyPI) into .tools/schemathesis"
log=$(mktemp)
if ! { rm -rf "$VENV" && "$PYTHON" -m venv "$VENV" && "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"; } >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
rm -f "$log"
echo "$SCHEMATHESIS_VERSION" >"$VENV/.version"
