# Sourced by the image and local-cluster scripts: points podman and buildah at a container store
# of this checkout's own (.data/containers) with the settings these machines need, so nothing is
# written to the machine's default store and every call agrees on them:
# - the vfs storage driver (no overlay mounts inside these sandboxes) and cgroupfs (no systemd);
# - ulimits no higher than this shell's: podman's defaults raise nofile and nproc, which needs
#   CAP_SYS_RESOURCE, and runc then fails with "error setting rlimit type 6/7: operation not
#   permitted". (podman also lowers its own nproc limit to 32768, hence the small nproc.)
# Callers use the host's network for builds and containers (`--network host`), so no bridge or
# firewall rule lands on the machine.
# shellcheck shell=bash

CONTAINERS_HOME=${CONTAINERS_HOME:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.data/containers}
mkdir -p "$CONTAINERS_HOME/storage" "$CONTAINERS_HOME/run" "$CONTAINERS_HOME/tmp"

nofile=$(ulimit -Hn)
[[ $nofile == unlimited ]] && nofile=1048576
cat >"$CONTAINERS_HOME/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$CONTAINERS_HOME/tmp"
EOF
cat >"$CONTAINERS_HOME/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$CONTAINERS_HOME/storage"
runroot = "$CONTAINERS_HOME/run"
EOF
unset nofile
export CONTAINERS_CONF=$CONTAINERS_HOME/containers.conf
export CONTAINERS_STORAGE_CONF=$CONTAINERS_HOME/storage.conf

# The label every image built here carries: a hash of its inputs, so an image is rebuilt only
# when they change.
INPUTS_LABEL=superstock.inputs

image_inputs() { # IMAGE → the inputs hash it was built from, or nothing
  podman image inspect --format "{{index .Labels \"$INPUTS_LABEL\"}}" "$1" 2>/dev/null || true
}
