# shellcheck shell=bash
# Sourced by the scripts that start servers (run.sh, cluster.sh, deps.sh): is a port taken, and
# by what. They check every port before they start anything, so a taken port is one clear line
# and a non-zero exit, not a server that dies in a log file while the script carries on.

# The exit code for "a port is taken": EADDRINUSE's errno on Linux, as the service itself uses.
readonly PORT_IN_USE_EXIT=98

# port_listening PORT: something listens on PORT, on any address. `ss` sees every listener;
# without it, a connection to the loopback address is the next best test.
port_listening() {
  if command -v ss >/dev/null; then
    [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

# port_holders PORT: "node (pid 123), …" for the processes listening on PORT, when `ss` can
# say (it shows only processes this user may inspect); nothing otherwise. Each is named by its
# program (ss gives the thread name, "MainThread" for node).
port_holders() {
  command -v ss >/dev/null || return 0
  local pid program holders=()
  for pid in $(ss -Hltnp "sport = :$1" 2>/dev/null | grep -oE 'pid=[0-9]+' | cut -d= -f2 | sort -un); do
    program=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -d' ' -f1)
    holders+=("${program:+${program##*/} }(pid $pid)")
  done
  local IFS=,
  local joined="${holders[*]}"
  echo "${joined//,/, }"
}

# require_free_ports TAG HINT PORT LABEL [PORT LABEL]…: one line on stderr per taken port
# ("[TAG] port 5059 (PORT) is already in use by node (pid 123)"), then HINT; returns
# PORT_IN_USE_EXIT if any was taken.
require_free_ports() {
  local tag=$1 hint=$2 taken=0 holders
  shift 2
  while (($# >= 2)); do
    if port_listening "$1"; then
      holders=$(port_holders "$1")
      echo "[$tag] port $1 ($2) is already in use${holders:+ by $holders}" >&2
      taken=1
    fi
    shift 2
  done
  if ((taken)); then
    echo "[$tag] $hint" >&2
    return "$PORT_IN_USE_EXIT"
  fi
}
