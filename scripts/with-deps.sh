#!/usr/bin/env bash
# Run a command with MONGO_URL and REDIS_URL pointing at local servers, starting them (and
# stopping them afterwards) unless they are already set or running.
set -euo pipefail
cd "$(dirname "$0")/.."
started=0
if [[ -z ${REDIS_URL:-} || -z ${MONGO_URL:-} ]]; then
  if ! scripts/deps.sh status | grep -q running; then started=1; fi
  scripts/deps.sh start
fi
trap 'if ((started)); then scripts/deps.sh stop; fi' EXIT
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:${REDIS_PORT:-6379}}
export MONGO_URL=${MONGO_URL:-mongodb://127.0.0.1:${MONGO_PORT:-27017}/}
"$@"
