#!/usr/bin/env bash
# `make run`: check the ports, set up what running needs (scripts/setup.sh run), build when the
# sources changed, start Redis and the MongoDB wire server (unless REDIS_URL / MONGO_URL point
# elsewhere, or they already run) and run one SuperStock replica on PORT (5059) in the
# foreground. A taken port stops it before anything starts (exit 98). Ctrl-C or SIGTERM stops the
# replica (gracefully, then by SIGKILL past SHUTDOWN_TIMEOUT_MS + 5 s) and the dependencies this
# script started, and the script then dies of that signal.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/ports.sh
source scripts/lib/children.sh
source scripts/lib/local-deps.sh

export PORT=${PORT:-5059}
export METRICS_PORT=${METRICS_PORT:-9464}
require_free_ports run "stop what holds it, or choose a free port (PORT=… METRICS_PORT=… make run)" \
  "$PORT" PORT "$METRICS_PORT" METRICS_PORT || exit
start_local_deps
export LOG_LEVEL=${LOG_LEVEL:-info}

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

  Ctrl-C stops the service and the Redis / MongoDB this run started.

INFO
spawn node dist/src/main.js
wait "$!"
