#!/usr/bin/env bash
# Local dependencies for `make run` / `make cluster`: Redis and a MongoDB wire server, as
# background daemons with pid files and logs in .data/. A dependency whose URL is already set
# (REDIS_URL, MONGO_URL) is left alone. Usage: deps.sh start|stop|status
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$PWD/.data
REDIS_PORT=${REDIS_PORT:-6379}
MONGO_PORT=${MONGO_PORT:-27017}
mkdir -p "$DATA"

running() { [[ -f $DATA/$1.pid ]] && kill -0 "$(cat "$DATA/$1.pid")" 2>/dev/null; }

wait_port() { # name port
  for _ in $(seq 1 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "[deps] $1 did not start on port $2; see $DATA/$1.log" >&2
  return 1
}

start() {
  if [[ -z ${REDIS_URL:-} ]] && ! running redis; then
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DATA" --appendonly yes --save '' \
      --daemonize yes --pidfile "$DATA/redis.pid" --logfile "$DATA/redis.log"
    wait_port redis "$REDIS_PORT"
  fi
  if [[ -z ${MONGO_URL:-} ]] && ! running mongo; then
    nohup scripts/mongo-wire-server.sh "$MONGO_PORT" >"$DATA/mongo.log" 2>&1 &
    echo $! >"$DATA/mongo.pid"
    wait_port mongo "$MONGO_PORT"
  fi
}

stop() {
  for name in redis mongo; do
    if running "$name"; then
      kill "$(cat "$DATA/$name.pid")" && rm -f "$DATA/$name.pid"
    fi
  done
}

status() {
  for name in redis mongo; do
    if running "$name"; then echo "$name: running (pid $(cat "$DATA/$name.pid"))"; else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
