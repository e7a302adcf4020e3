#!/usr/bin/env bash
# Start the local MongoDB wire-protocol server in the foreground: mongo-wire-server.sh PORT [HOST]
set -euo pipefail
WIRE_DIR="$(cd "$(dirname "$0")/.." && pwd)/.tools/mongo-wire-server"
[[ -d $WIRE_DIR/classes ]] || { echo "mongo wire server missing: run make setup" >&2; exit 1; }
# A small heap and a quick-starting JIT: it holds test data, not a production data set.
# MONGO_WIRE_JAVA_OPTS adds JVM flags after these (later ones win) for a big one: it keeps ~890 B
# of live heap per recorded sale, so 10M sales (make bench-takeover) need
# MONGO_WIRE_JAVA_OPTS='-Xmx12g -Xmn1g' — a small young generation, so the ~9 GB that stays live fits
# the old one (with the serial collector's default split, 12g leaves only 8 GB for it).
# shellcheck disable=SC2086 # the options are words to split
exec java -Xms64m -Xmx1g -XX:+UseSerialGC -XX:TieredStopAtLevel=1 ${MONGO_WIRE_JAVA_OPTS:-} -cp "$WIRE_DIR/classes:$WIRE_DIR/lib/*" MongoWireServer "$@"
