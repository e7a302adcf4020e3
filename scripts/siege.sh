#!/usr/bin/env bash
# The original project's four siege commands, unchanged, against a local SuperStock on :5059,
# printed beside the original's published figures. Those came from another machine and .NET:
# context, not a ratio. Our service runs as the original did: standalone, in-memory lanes not
# made durable (DURABILITY=none), the db lane on the local MongoDB wire server.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v siege >/dev/null || { echo "siege missing: run make setup" >&2; exit 1; }
export ELECTION=none DURABILITY=none WORKERS=${WORKERS:-2} LOG_LEVEL=warn PORT=5059 METRICS_PORT=${METRICS_PORT:-9464} MONGO_DB="siege_$RANDOM$RANDOM"
node dist/src/main.js &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf localhost:5059/readyz >/dev/null && break; sleep 0.1; done

printf '\n%-14s %-22s %-22s %-10s %s\n' lane "ours: transactions" "units sold (Peek)" "original" command
declare -A ORIGINAL=([Db]=2686 [Cache/Atomic]=7140 [Cache/Signal]=9872 [Cache/Lock]=6496)
for path in Db Cache/Atomic Cache/Signal Cache/Lock; do
  peek() { curl -s "localhost:5059/api/v1/OneStock/$path/Peek" | sed -E 's/.*"stock":([0-9]+).*/\1/'; }
  before=$(peek)
  cmd="siege -c5 -t2s -b 'http://localhost:5059/api/v1/OneStock/$path/Buy POST'"
  out=$(siege -c5 -t2s -b "http://localhost:5059/api/v1/OneStock/$path/Buy POST" 2>&1 || true)
  transactions=$(grep -oE '"transactions":[[:space:]]*[0-9]+' <<<"$out" | grep -oE '[0-9]+$' || grep -E '^Transactions' <<<"$out" | grep -oE '[0-9]+' | head -1)
  sold=$((before - $(peek)))
  printf '%-14s %-22s %-22s %-10s %s\n' "$path" "$transactions" "$sold" "${ORIGINAL[$path]}" "$cmd"
done
echo
echo "original: siege on the author's machine (.NET, see its README); ours: this machine, $(nproc) cores, WORKERS=$WORKERS."
echo "siege does not count the (at most -c) requests in flight when its clock stops, so units sold can exceed transactions by up to 5."
