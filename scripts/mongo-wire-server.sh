#!/usr/bin/env bash
# Start the local MongoDB wire-protocol server in the foreground: mongo-wire-server.sh PORT [HOST]
set -euo pipefail
WIRE_DIR="$(cd "$(dirname "$0")/.." && pwd)/.tools/mongo-wire-server"
[[ -d $WIRE_DIR/classes ]] || { echo "mongo wire server missing: run make setup" >&2; exit 1; }
# A small heap and a quick-starting JIT: it holds test data, not a production data set.
exec java -Xms64m -Xmx1g -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$WIRE_DIR/classes:$WIRE_DIR/lib/*" MongoWireServer "$@"
