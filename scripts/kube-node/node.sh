#!/usr/bin/env bash
# A real single-node Kubernetes on this machine, inside namespaces of its own, so that nothing it
# does — bridges, veths, iptables rules, mounts, pod network namespaces — lands in the machine's:
#
#   a network namespace    lo, an interface `node0` (a veth) with the node's address (10.250.0.10),
#                          the CNI bridge `cni0` (pods: 10.244.0.0/24), kube-proxy's iptables
#                          rules (services: 10.96.0.0/16), all private to it
#   a mount namespace      tmpfs over /run and /var/lib/cni, so containerd's sockets and shims,
#                          runc's state and the CNI cache vanish with it
# (cgroups are not namespaced: each container's are containerd's default /k8s.io/<id>, which runc
# removes with the container; `down` deletes every container through containerd first.)
#
# In it: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy
# (from the module pinned in scripts/kube-tools), containerd v2 with Debian's runc and CNI plugins
# (scripts/kube-node/containerd), CoreDNS as a Deployment (scripts/kube-node/coredns), and the
# images `make image` built, imported with `ctr -n k8s.io images import`.
#
# Usage: node.sh up STATE_DIR | down STATE_DIR | run STATE_DIR COMMAND... (a command in the node's
# network namespace, e.g. kubectl with STATE_DIR/admin.kubeconfig as KUBECONFIG)
# Settings found to work on these machines (cgroup v1 controllers, no CAP_SYS_RESOURCE) are
# explained where they are made.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$REPO/.tools/bin
export PATH=$BIN:$PATH

ACTION=${1:?usage: node.sh up|down|run STATE_DIR ...}
STATE=$(mkdir -p "${2:?usage: node.sh up|down|run STATE_DIR ...}" && cd "$2" && pwd)
shift 2

NODE_NAME=node0
NODE_IP=10.250.0.10
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
DNS_SERVICE_IP=10.96.0.10
say() { printf '[kube-local] %s\n' "$*"; }

holder_pid() { cat "$STATE/holder.pid" 2>/dev/null || true; }
alive() { [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; }
# Run in the node's namespaces (network and mount).
in_node() { nsenter --target "$(holder_pid)" --net --mount -- "$@"; }

# --- down --------------------------------------------------------------------------------------
down() {
  local holder
  holder=$(holder_pid)
  if alive "$holder"; then
    # Pods first, through containerd, so runc removes their cgroups and mounts in order.
    if [[ -S $STATE/containerd/containerd.sock ]] && alive "$(cat "$STATE/pids/containerd" 2>/dev/null)"; then
      alive "$(cat "$STATE/pids/kubelet" 2>/dev/null)" && kill "$(cat "$STATE/pids/kubelet")" 2>/dev/null || true
      local ctr=(in_node ctr --address "$STATE/containerd/containerd.sock" --namespace k8s.io)
      for task in $("${ctr[@]}" tasks list --quiet 2>/dev/null); do "${ctr[@]}" tasks kill --signal SIGKILL "$task" >/dev/null 2>&1 || true; done
      for task in $("${ctr[@]}" tasks list --quiet 2>/dev/null); do
        for _ in $(seq 1 50); do "${ctr[@]}" tasks delete "$task" >/dev/null 2>&1 && break; sleep 0.1; done
      done
    fi
    # Then every process of the node: the daemons and containerd's shims (pods' processes are
    # gone with their tasks).
    local netns pids=()
    netns=$(readlink "/proc/$holder/ns/net")
    for proc in /proc/[0-9]*; do
      [[ $(readlink "$proc/ns/net" 2>/dev/null) == "$netns" && ${proc#/proc/} != "$holder" ]] && pids+=("${proc#/proc/}")
    done
    if ((${#pids[@]})); then
      kill -TERM "${pids[@]}" 2>/dev/null || true
      for _ in $(seq 1 50); do
        local left=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
        ((left)) || break
        sleep 0.1
      done
      kill -KILL "${pids[@]}" 2>/dev/null || true
    fi
    kill "$holder" 2>/dev/null || true
  fi
  # containerd's parent cgroup, once empty (rmdir refuses while any container is left in it).
  rmdir /sys/fs/cgroup/*/k8s.io 2>/dev/null || true
  [[ -f $STATE/created-var-lib-cni ]] && rmdir /var/lib/cni 2>/dev/null || true
  rm -f "$STATE/holder.pid" "$STATE/created-var-lib-cni" "$STATE/images.tar"
  # Everything but the logs: the images unpacked in containerd alone take a gigabyte or two.
  rm -rf "$STATE"/{pids,containerd,kubelet,etcd,cni,pod-logs,pki,prometheus} "$STATE"/*.kubeconfig
}

if [[ $ACTION == down ]]; then
  down
  say "down ($STATE kept for its logs)"
  exit 0
fi
if [[ $ACTION == run ]]; then
  alive "$(holder_pid)" || { echo "[kube-local] no node is up in $STATE" >&2; exit 1; }
  exec nsenter --target "$(holder_pid)" --net -- env KUBECONFIG="$STATE/admin.kubeconfig" "$@"
fi
[[ $ACTION == up ]] || { echo "usage: node.sh up|down|run STATE_DIR ..." >&2; exit 2; }

# --- up ------------------------------------------------------------------------------------------
alive "$(holder_pid)" && { say "already up in $STATE"; exit 0; }
trap 'status=$?; if ((status)); then say "failed; logs in $STATE/logs"; down; fi' EXIT
mkdir -p "$STATE"/{logs,pids,pki,etcd,kubelet,pod-logs,containerd,cni/net.d,cni/ipam}

# The namespaces: a process that only sleeps holds them; everything else joins with nsenter.
[[ -d /var/lib/cni ]] || { mkdir -p /var/lib/cni && touch "$STATE/created-var-lib-cni"; }
unshare --net --mount --propagation private sleep infinity </dev/null >/dev/null 2>&1 &
echo $! >"$STATE/holder.pid"
for _ in $(seq 1 50); do [[ $(readlink "/proc/$(holder_pid)/ns/net" 2>/dev/null) != "$(readlink /proc/self/ns/net)" ]] && break; sleep 0.05; done
in_node sh -euc "
  mount -t tmpfs -o mode=755 tmpfs /run
  mount -t tmpfs -o mode=755 tmpfs /var/lib/cni
  ip link set lo up
  # The node's own interface: one end of a veth pair whose other end stays here too (this
  # kernel has no dummy interfaces; a veth with its peer up has a carrier).
  ip link add $NODE_NAME type veth peer name $NODE_NAME-peer
  ip addr add $NODE_IP/24 dev $NODE_NAME
  ip link set $NODE_NAME-peer up
  ip link set $NODE_NAME up
  # Every destination routes (and, but for pods and services, goes nowhere): a locally made
  # connection to a Service's address must pass the route lookup before kube-proxy's DNAT.
  ip route add default dev $NODE_NAME
  sysctl -qw net.ipv4.ip_forward=1
"

start() { # name command... — a daemon in the node's namespaces, its output in logs/NAME.log
  local name=$1
  shift
  nsenter --target "$(holder_pid)" --net --mount -- "$@" >"$STATE/logs/$name.log" 2>&1 &
  echo $! >"$STATE/pids/$name"
}
wait_for() { # description seconds command... — poll until the command succeeds
  local description=$1 seconds=$2
  shift 2
  for _ in $(seq 1 $((seconds * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "[kube-local] timed out after $seconds s waiting for $description" >&2
  return 1
}
kubectl_node() { in_node env KUBECONFIG="$STATE/admin.kubeconfig" kubectl "$@"; }

# --- certificates and credentials ------------------------------------------------------------------
# One CA signs the API server's serving certificate (valid for the node's address, the
# `kubernetes` Service's ClusterIP and its DNS names), so pods verify it through the
# kube-root-ca.crt ConfigMap exactly as in any cluster. Components authenticate with static tokens.
pki=$STATE/pki
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=superstock-local-ca -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 2 -out "$pki/apiserver.crt" \
  -extfile <(printf 'subjectAltName=IP:%s,IP:%s,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n' "$NODE_IP" "$API_SERVICE_IP") 2>/dev/null
openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
: >"$pki/tokens.csv"
kubeconfig() { # file user groups — a static token for that user, and a kubeconfig that uses it
  local token
  token=$(openssl rand -hex 24)
  echo "$token,$2,$2,\"$3\"" >>"$pki/tokens.csv"
  cat >"$STATE/$1" <<EOF
apiVersion: v1
kind: Config
clusters: [{ name: local, cluster: { server: "https://$NODE_IP:6443", certificate-authority: "$pki/ca.crt" } }]
users: [{ name: "$2", user: { token: "$token" } }]
contexts: [{ name: superstock-local, context: { cluster: local, user: "$2" } }]
current-context: superstock-local
EOF
}
kubeconfig admin.kubeconfig admin system:masters
kubeconfig kubelet.kubeconfig "system:node:$NODE_NAME" system:nodes
kubeconfig controller-manager.kubeconfig system:kube-controller-manager ""
kubeconfig scheduler.kubeconfig system:kube-scheduler ""
kubeconfig proxy.kubeconfig system:kube-proxy ""

# --- etcd and kube-apiserver ---------------------------------------------------------------------
start etcd etcd --data-dir "$STATE/etcd" --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster default=http://127.0.0.1:2380 --unsafe-no-fsync --log-level warn
start kube-apiserver kube-apiserver --advertise-address "$NODE_IP" --bind-address 0.0.0.0 --secure-port 6443 \
  --etcd-servers http://127.0.0.1:2379 --service-cluster-ip-range "$SERVICE_CIDR" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" --client-ca-file "$pki/ca.crt" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local --service-account-key-file "$pki/sa.pub" \
  --service-account-signing-key-file "$pki/sa.key" --token-auth-file "$pki/tokens.csv" \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction --allow-privileged \
  --kubelet-preferred-address-types InternalIP --v 0
wait_for "kube-apiserver" 120 kubectl_node get --raw /readyz

# --- containerd --------------------------------------------------------------------------------------
# Config version 4 (containerd 2.4): its servers are plugins, so the socket is set under
# io.containerd.server.v1.grpc (a top-level [grpc] is silently ignored and the default socket
# used). No imports from the machine's /etc/containerd. restrict_oom_score_adj: lowering a
# process's oom_score_adj needs CAP_SYS_RESOURCE, which these machines do not grant; without it
# every sandbox fails with runc's "can't get final child's PID from pipe: EOF". Unprivileged
# ports/ICMP stay off (their sysctls are refused here). Pod network namespaces are mounted under
# the state directory.
cat >"$STATE/containerd/config.toml" <<EOF
version = 4
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
imports = []
[plugins.'io.containerd.server.v1.grpc']
  address = "$STATE/containerd/containerd.sock"
[plugins.'io.containerd.server.v1.ttrpc']
  address = "$STATE/containerd/containerd.sock.ttrpc"
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  enable_unprivileged_ports = false
  enable_unprivileged_icmp = false
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$STATE/cni/net.d"
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
    BinaryName = "$(command -v runc)"
    SystemdCgroup = false
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "registry.k8s.io/pause:3.10.2"
EOF
cat >"$STATE/cni/net.d/10-superstock.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "superstock",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "hairpinMode": true,
      "ipam": { "type": "host-local", "ranges": [[{ "subnet": "$POD_CIDR" }]], "routes": [{ "dst": "0.0.0.0/0" }], "dataDir": "$STATE/cni/ipam" }
    }
  ]
}
EOF
start containerd containerd --config "$STATE/containerd/config.toml"
wait_for "containerd" 60 in_node ctr --address "$STATE/containerd/containerd.sock" version

# The images `make image` built, from the podman store into containerd's k8s.io namespace (the
# one the kubelet uses). podman runs outside the node: the archive is a file on the way.
IMAGES=(docker.io/library/superstock:dev localhost/superstock-redis:local localhost/superstock-mongo-wire:local
  localhost/superstock-siege:local localhost/superstock-coredns:local registry.k8s.io/pause:3.10.2)
started=$SECONDS
(source "$REPO/scripts/image/containers.sh" && podman save --quiet --format docker-archive --multi-image-archive -o "$STATE/images.tar" "${IMAGES[@]}")
in_node ctr --address "$STATE/containerd/containerd.sock" --namespace k8s.io images import "$STATE/images.tar" >"$STATE/logs/import.log" 2>&1
rm -f "$STATE/images.tar"
say "images imported into containerd ($((SECONDS - started)) s)"

# --- the rest of the control plane, kube-proxy and the kubelet -------------------------------------------
start kube-controller-manager kube-controller-manager --kubeconfig "$STATE/controller-manager.kubeconfig" \
  --use-service-account-credentials --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
  --cluster-name superstock-local --leader-elect=false --secure-port 0 --v 0
start kube-scheduler kube-scheduler --kubeconfig "$STATE/scheduler.kubeconfig" --leader-elect=false --secure-port 0 --v 0
cat >"$STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: { kubeconfig: "$STATE/proxy.kubeconfig" }
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
# Pods on one bridge reach each other's Services: masquerading every Service connection makes
# the replies come back through the node, where conntrack undoes the DNAT (no br_netfilter needed).
iptables: { masqueradeAll: true }
# Leave the machine-wide conntrack sysctls alone.
conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s }
healthzBindAddress: ""
metricsBindAddress: "127.0.0.1:10249"
EOF
start kube-proxy kube-proxy --config "$STATE/kube-proxy.yaml"
: >"$STATE/resolv.conf"
cat >"$STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# These machines have cgroup v1 controllers and no systemd; QoS cgroups and node-allocatable
# enforcement are off.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
localStorageCapacityIsolation: false
# Disk-pressure eviction would judge the machine's shared disk, not this node.
evictionHard: { memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%" }
imageGCHighThresholdPercent: 100
containerRuntimeEndpoint: unix://$STATE/containerd/containerd.sock
address: $NODE_IP
readOnlyPort: 0
healthzPort: 0
authentication: { anonymous: { enabled: true }, webhook: { enabled: false } }
authorization: { mode: AlwaysAllow }
clusterDNS: [$DNS_SERVICE_IP]
clusterDomain: cluster.local
resolvConf: $STATE/resolv.conf
podLogsDir: $STATE/pod-logs
serializeImagePulls: false
EOF
start kubelet kubelet --config "$STATE/kubelet.yaml" --kubeconfig "$STATE/kubelet.kubeconfig" --root-dir "$STATE/kubelet" \
  --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v 0
wait_for "node $NODE_NAME Ready" 120 kubectl_node wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s

# --- CoreDNS -------------------------------------------------------------------------------------
kubectl_node apply -f "$REPO/scripts/kube-node/coredns.yaml" >"$STATE/logs/coredns-apply.log"
wait_for "CoreDNS available" 120 kubectl_node -n kube-system wait --for=condition=Available deployment/coredns --timeout=1s
trap - EXIT
say "up: node $NODE_NAME Ready, CoreDNS serving; kubectl: scripts/kube-node/node.sh run $STATE kubectl get pods -A"
