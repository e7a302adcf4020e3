#!/usr/bin/env bash
# Builds Kubernetes from pinned Go modules into .tools/bin, the way controller-runtime's envtest
# uses real binaries instead of a fake API server. Two sets, each rebuilt only when its pins change:
#
#   kube-tools.sh          the control plane the tests run against: kube-apiserver, kubectl, etcd
#                          (scripts/kube-tools/go.mod + go.sum)
#   kube-tools.sh node     also what a single node needs (`make kube-up-local`): kubelet,
#                          kube-controller-manager, kube-scheduler, kube-proxy (the same module),
#                          containerd v2 with ctr and its runc shim (scripts/kube-node/containerd,
#                          a module of its own: its dependencies are not Kubernetes'), and CoreDNS
#                          (scripts/kube-node/coredns, likewise)
#
# The first build takes several minutes on two cores per set; Go's build cache makes the second
# set reuse most of the first.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=$PWD/.tools/bin
mkdir -p "$BIN"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# build MODULE_DIR OUTPUT PACKAGE [go build flags...] — -trimpath and no DWARF keep the binaries
# about half their size. Go's download chatter goes to a log, shown only if a build fails.
build() {
  (cd "$1" && GOFLAGS='-mod=readonly -buildvcs=false' go build -trimpath -ldflags="-s -w $VERSION_FLAGS" "${@:4}" -o "$BIN/$2" "$3") >>"$log" 2>&1 || { cat "$log" >&2; exit 1; }
}
# What `go build` alone leaves out, so the components report their release (v0.0.0-master
# otherwise, which trips any chart's kubeVersion constraint).
KUBE_VERSION=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' scripts/kube-tools/go.mod)
KUBE_MINOR=$(echo "$KUBE_VERSION" | cut -d. -f2)
VERSION_FLAGS="-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$KUBE_MINOR"
VERSION_FLAGS+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$KUBE_MINOR"
stamp_of() { sha256sum "$@" | sha256sum | cut -c1-16; }
have() { for tool in "$@"; do [[ -x $BIN/$tool ]] || return 1; done; }
need_go() { command -v go >/dev/null || { echo "[setup] Go is needed to build $*" >&2; exit 1; }; }

# --- the control plane ---------------------------------------------------------------------------
want=$(stamp_of scripts/kube-tools/go.mod scripts/kube-tools/go.sum)
if [[ "$(cat "$BIN/.kube-tools" 2>/dev/null)" != "$want" ]] || ! have kube-apiserver etcd kubectl; then
  need_go kube-apiserver, kubectl and etcd
  echo "[setup] building kube-apiserver, kubectl and etcd from scripts/kube-tools/go.mod (once; several minutes)"
  build scripts/kube-tools kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
  build scripts/kube-tools kubectl k8s.io/kubernetes/cmd/kubectl
  build scripts/kube-tools etcd go.etcd.io/etcd/server/v3
  echo "$want" >"$BIN/.kube-tools"
fi
[[ ${1:-} == node ]] || exit 0

# --- a node: kubelet and friends, containerd, CoreDNS ------------------------------------------------
want=$(stamp_of scripts/kube-tools/go.mod scripts/kube-tools/go.sum scripts/kube-node/*/go.mod scripts/kube-node/*/go.sum)
node_tools=(kubelet kube-controller-manager kube-scheduler kube-proxy containerd containerd-shim-runc-v2 ctr coredns)
if [[ "$(cat "$BIN/.kube-node" 2>/dev/null)" != "$want" ]] || ! have "${node_tools[@]}"; then
  need_go "${node_tools[*]}"
  echo "[setup] building ${node_tools[*]} from scripts/kube-tools and scripts/kube-node (once; several minutes)"
  for component in kubelet kube-controller-manager kube-scheduler kube-proxy; do
    build scripts/kube-tools "$component" "k8s.io/kubernetes/cmd/$component"
  done
  # Static, and without the snapshotters for filesystems these machines do not have.
  for component in containerd containerd-shim-runc-v2 ctr; do
    CGO_ENABLED=0 build scripts/kube-node/containerd "$component" "github.com/containerd/containerd/v2/cmd/$component" -tags 'no_btrfs no_devmapper no_zfs'
  done
  build scripts/kube-node/coredns coredns github.com/coredns/coredns
  echo "$want" >"$BIN/.kube-node"
fi
