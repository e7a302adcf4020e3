#!/usr/bin/env bash
# `make cluster`: three replicas on CLUSTER_PORTS (5059 5080 5081, as in the original) with
# metrics on CLUSTER_METRICS_PORTS (9464 9465 9466), Redis and the MongoDB wire server, no
# Docker. CLUSTER_MODE=allotments (the default, as in the chart): every replica sells from its own
# allotment; the script shows which replicas are selling. CLUSTER_MODE=primary: the replicas elect a
# primary through the MongoDB lease; this script shows who it is, and keeps showing it as it
# changes. A taken port stops it before anything starts (exit 98), a
# replica that dies while starting stops everything (its log's tail is shown). Ctrl-C or SIGTERM
# stops the replicas (gracefully, then by SIGKILL past SHUTDOWN_TIMEOUT_MS + 5 s) and the
# dependencies this script started, and the script then dies of that signal.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/ports.sh
source scripts/lib/children.sh
source scripts/lib/local-deps.sh

mode=${CLUSTER_MODE:-allotments}
case $mode in
  primary | allotments) ;;
  *)
    echo "[cluster] CLUSTER_MODE must be primary or allotments, got \"$mode\"" >&2
    exit 2
    ;;
esac
read -ra ports <<<"${CLUSTER_PORTS:-5059 5080 5081}"
read -ra metrics_ports <<<"${CLUSTER_METRICS_PORTS:-9464 9465 9466}"
if ((${#ports[@]} != 3 || ${#metrics_ports[@]} != 3)); then
  echo "[cluster] CLUSTER_PORTS and CLUSTER_METRICS_PORTS take three ports each" >&2
  exit 2
fi
checks=()
for i in 0 1 2; do checks+=("${ports[$i]}" "replica-$i, CLUSTER_PORTS" "${metrics_ports[$i]}" "replica-$i metrics, CLUSTER_METRICS_PORTS"); done
require_free_ports cluster "stop what holds it, or choose free ports (CLUSTER_PORTS='…' CLUSTER_METRICS_PORTS='…' make cluster)" "${checks[@]}" || exit
DATA=${DATA_DIR:-$PWD/.data}
start_local_deps
mkdir -p "$DATA"

export WORKERS=${WORKERS:-1} HOST=127.0.0.1 ELECTION=mongo CLUSTER_MODE=$mode

for i in 0 1 2; do
  STOCK_HOST_ID="replica-$i" PORT=${ports[$i]} METRICS_PORT=${metrics_ports[$i]} ADVERTISE_URL="http://127.0.0.1:${ports[$i]}" \
    spawn node dist/src/main.js >"$DATA/replica-$i.log" 2>&1
done

# Started means answering: a replica that exits first (a port taken since the check, a bad
# setting) stops everything, with the reason from its log.
for i in 0 1 2; do
  until curl -sf -m 1 -o /dev/null "http://127.0.0.1:${ports[$i]}/healthz"; do
    if ! kill -0 "${CHILD_PIDS[$i]}" 2>/dev/null; then
      status=0
      wait "${CHILD_PIDS[$i]}" || status=$?
      echo "[cluster] replica-$i exited with code $status while starting; the end of $DATA/replica-$i.log:" >&2
      tail -n 5 "$DATA/replica-$i.log" >&2
      exit "$((status ? status : 1))"
    fi
    sleep 0.2 &
    wait "$!"
  done
done

echo "three replicas, CLUSTER_MODE=$mode: :${ports[0]} :${ports[1]} :${ports[2]} (logs in $DATA/replica-*.log, metrics on :${metrics_ports[*]})"
echo "admin token: $ADMIN_TOKEN"
if [[ $mode == allotments ]]; then
  echo "every replica sells; kill one (kill -9 <pid>) and watch its units come back after its lease; Ctrl-C stops all."
  selling=SELLING
else
  echo "kill the primary (kill -9 <pid>) and watch another take over; Ctrl-C stops all."
  selling=PRIMARY
fi
last=""
while true; do
  line=""
  for i in 0 1 2; do
    role=$(curl -s -m 1 "http://127.0.0.1:${metrics_ports[$i]}/metrics" | awk -v selling="$selling" '/^superstock_role\{role="primary"\}/ {print ($2 == 1) ? selling : (selling == "SELLING" ? "not selling" : "secondary")}' || true)
    line+="replica-$i(:${ports[$i]}, pid ${CHILD_PIDS[$i]}): ${role:-down}   "
  done
  if [[ $line != "$last" ]]; then echo "$(date +%T)  $line"; last=$line; fi
  sleep 1 &
  wait "$!"
done
