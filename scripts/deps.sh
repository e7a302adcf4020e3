#!/usr/bin/env bash
# Local dependencies for `make run` / `make cluster` / `make deps-up`: Redis and a MongoDB wire
# server, as background daemons in sessions of their own, with pid files and logs in DATA_DIR
# (default .data/). A dependency whose URL is already set (REDIS_URL, MONGO_URL) is left alone.
#   deps.sh start [name…]  start them (all by default) on REDIS_PORT (6379) / MONGO_PORT (27017);
#                          a taken port fails at once, naming the port and what holds it
#   deps.sh stop [name…]   stop them and wait until they are gone
#   deps.sh missing        the names `start` would start: URL unset and not running
#   deps.sh check          fail, as `start` would, if a port `start` needs is taken
#   deps.sh status
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/ports.sh
DATA=${DATA_DIR:-$PWD/.data}
REDIS_PORT=${REDIS_PORT:-6379}
MONGO_PORT=${MONGO_PORT:-27017}
STOP_GRACE_SECONDS=10
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

missing() {
  if [[ -z ${REDIS_URL:-} ]] && ! running redis; then echo redis; fi
  if [[ -z ${MONGO_URL:-} ]] && ! running mongo; then echo mongo; fi
}

check() { # name… (default: every missing one)
  local names=("$@") args=()
  ((${#names[@]})) || mapfile -t names < <(missing)
  for name in "${names[@]}"; do
    case $name in
      redis) args+=("$REDIS_PORT" "REDIS_PORT, Redis") ;;
      mongo) args+=("$MONGO_PORT" "MONGO_PORT, MongoDB wire server") ;;
    esac
  done
  ((${#args[@]})) || return 0
  require_free_ports deps "stop what holds it, choose a free port (REDIS_PORT=…, MONGO_PORT=…), or point REDIS_URL / MONGO_URL at a running server" "${args[@]}"
}

start() { # name… (default: every missing one)
  local names=("$@") name
  ((${#names[@]})) || mapfile -t names < <(missing)
  ((${#names[@]})) || return 0
  check "${names[@]}" || exit
  for name in "${names[@]}"; do
    running "$name" && continue
    case $name in
      redis)
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DATA" --appendonly yes --save '' \
          --daemonize yes --pidfile "$DATA/redis.pid" --logfile "$DATA/redis.log"
        wait_port redis "$REDIS_PORT"
        echo "[deps] Redis on :$REDIS_PORT (log: $DATA/redis.log)"
        ;;
      mongo)
        setsid scripts/mongo-wire-server.sh "$MONGO_PORT" </dev/null >"$DATA/mongo.log" 2>&1 &
        echo $! >"$DATA/mongo.pid"
        wait_port mongo "$MONGO_PORT"
        echo "[deps] MongoDB wire server on :$MONGO_PORT (log: $DATA/mongo.log)"
        ;;
    esac
  done
}

stop() { # name… (default: both)
  local names=("$@") pids=() name pid
  ((${#names[@]})) || names=(redis mongo)
  for name in "${names[@]}"; do
    if running "$name"; then
      pid=$(cat "$DATA/$name.pid")
      kill "$pid" 2>/dev/null && pids+=("$pid")
    fi
    rm -f "$DATA/$name.pid"
  done
  # Gone means gone: the ports are free again when this returns.
  for _ in $(seq 1 $((STOP_GRACE_SECONDS * 10))); do
    alive=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    ((${#alive[@]})) || return 0
    sleep 0.1
  done
  echo "[deps] pid ${alive[*]} did not stop within ${STOP_GRACE_SECONDS}s: killed" >&2
  kill -KILL "${alive[@]}" 2>/dev/null || true
}

status() {
  for name in redis mongo; do
    if running "$name"; then echo "$name: running (pid $(cat "$DATA/$name.pid"))"; else echo "$name: stopped"; fi
  done
}

command=${1:-}
shift || true
case $command in
  start) start "$@" ;;
  stop) stop "$@" ;;
  missing) missing ;;
  check) check "$@" ;;
  status) status ;;
  *) echo "usage: $0 start|stop [redis|mongo]… | missing | check | status" >&2; exit 2 ;;
esac
