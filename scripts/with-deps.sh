#!/usr/bin/env bash
# Run a command with MONGO_URL and REDIS_URL pointing at local servers, starting them (and
# stopping them afterwards) unless they are already set or running.
set -euo pipefail
cd "$(dirname "$0")/.."
# Only the dependencies started here are stopped afterwards.
mapfile -t ours < <(scripts/deps.sh missing)
if ((${#ours[@]})); then
  trap 'scripts/deps.sh stop "${ours[@]}"' EXIT
  scripts/deps.sh start "${ours[@]}"
fi
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:${REDIS_PORT:-6379}}
export MONGO_URL=${MONGO_URL:-mongodb://127.0.0.1:${MONGO_PORT:-27017}/}
"$@"
