#!/usr/bin/env bash
# Builds the Kubernetes control plane the tests run against — kube-apiserver, kubectl and etcd —
# from the Go modules pinned in scripts/kube-tools/go.mod (+ go.sum), into .tools/bin, the way
# controller-runtime's envtest uses real binaries instead of a fake API server.
# Rebuilt only when the pins change; the first build takes several minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=$PWD/.tools/bin
stamp=$BIN/.kube-tools
want=$(sha256sum scripts/kube-tools/go.mod scripts/kube-tools/go.sum | sha256sum | cut -c1-16)
[[ "$(cat "$stamp" 2>/dev/null)" == "$want" && -x $BIN/kube-apiserver && -x $BIN/etcd && -x $BIN/kubectl ]] && exit 0

command -v go >/dev/null || { echo "[setup] Go is needed to build kube-apiserver, kubectl and etcd" >&2; exit 1; }
echo "[setup] building kube-apiserver, kubectl and etcd from scripts/kube-tools/go.mod (once; several minutes)"
mkdir -p "$BIN"
cd scripts/kube-tools
# -trimpath and no DWARF keep the three binaries around 200 MB instead of 400. Go's download
# chatter goes to a log, shown only if a build fails.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
build() { GOFLAGS='-mod=readonly -buildvcs=false' go build -trimpath -ldflags='-s -w' -o "$BIN/$1" "$2" >>"$log" 2>&1 || { cat "$log" >&2; exit 1; }; }
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kubectl k8s.io/kubernetes/cmd/kubectl
build etcd go.etcd.io/etcd/server/v3
echo "$want" >"$stamp"
