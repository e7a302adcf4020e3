# shellcheck shell=bash
# Sourced by the scripts that run in the foreground (run.sh, cluster.sh): start children so that
# Ctrl-C or SIGTERM stops all of them, and the script too.
#
# bash runs a trap only once the foreground command has returned, so every child runs in the
# background and the script `wait`s for it (a trapped signal ends `wait` at once). Each child
# runs in a session and process group of its own (setsid): a signal reaches its whole tree
# (npm → tsc, setup.sh → mvn, …) through stop_children only, gently first and with SIGKILL once
# the grace period is over.

CHILD_PIDS=()
STEP_PID=

# spawn CMD…: start CMD in the background in its own process group; its pid is in $!.
spawn() {
  setsid "$@" &
  CHILD_PIDS+=("$!")
}

# step CMD…: run CMD to its end, as a foreground command would, but so a signal stops it at once.
step() {
  local status=0
  setsid "$@" &
  STEP_PID=$!
  wait "$STEP_PID" || status=$?
  STEP_PID=
  return "$status"
}

# any_group_alive PGID…: a process of one of these groups is still running.
any_group_alive() {
  local pgid
  for pgid in "$@"; do kill -0 -- "-$pgid" 2>/dev/null && return 0; done
  return 1
}

# stop_children GRACE_SECONDS: SIGTERM to every child's process group (and the running step's);
# wait until they are gone, at most GRACE_SECONDS, then SIGKILL whatever is left.
stop_children() {
  local grace=$1 pgid deadline
  local groups=("${CHILD_PIDS[@]}" ${STEP_PID:+"$STEP_PID"})
  ((${#groups[@]})) || return 0
  for pgid in "${groups[@]}"; do kill -TERM -- "-$pgid" 2>/dev/null || true; done
  deadline=$(($(date +%s%N) / 1000000 + grace * 1000))
  while any_group_alive "${groups[@]}" && (($(date +%s%N) / 1000000 < deadline)); do sleep 0.1; done
  for pgid in "${groups[@]}"; do
    if kill -KILL -- "-$pgid" 2>/dev/null; then echo "[stop] process group $pgid did not stop within ${grace}s: killed" >&2; fi
  done
  CHILD_PIDS=()
  STEP_PID=
}

# on_signals CLEANUP: on INT or TERM run CLEANUP once (a second Ctrl-C does not cut it short),
# then die of the same signal, as a shell expects of an interrupted command; CLEANUP also runs
# on a normal exit.
on_signals() {
  local cleanup=$1
  # shellcheck disable=SC2064 # expand now: the trap names the cleanup function.
  trap "$cleanup" EXIT
  # shellcheck disable=SC2064
  trap "trap '' INT TERM; echo '[stop] stopping everything this started' >&2; $cleanup; trap - INT EXIT; kill -INT \$\$" INT
  # shellcheck disable=SC2064
  trap "trap '' INT TERM; echo '[stop] stopping everything this started' >&2; $cleanup; trap - TERM EXIT; kill -TERM \$\$" TERM
}
