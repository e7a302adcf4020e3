#!/usr/bin/env bash
# Start the local MongoDB wire-protocol server in the foreground: mongo-wire-server.sh PORT [HOST]
set -euo pipefail
WIRE_DIR="$(cd "$(dirname "$0")/.." && pwd)/.tools/mongo-wire-server"
[[ -d $WIRE_DIR/classes ]] || { echo "mongo wire server missing: run make setup" >&2; exit 1; }
# A small heap and a quick-starting JIT: it holds test data, not a production data set.
# MONGO_WIRE_HEAP raises the heap for a big one (it keeps ~890 B per recorded sale: 10M sales
# need MONGO_WIRE_HEAP=12g for make bench-takeover).
exec java -Xms64m -Xmx"${MONGO_WIRE_HEAP:-1g}" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$WIRE_DIR/classes:$WIRE_DIR/lib/*" MongoWireServer "$@"
