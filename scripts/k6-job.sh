#!/usr/bin/env bash
# `make k6`: run one script of k6/ as a Job in the cluster and exit with k6's own exit code.
#
# The Job is rendered from the chart's k6 template alone (`helm template --show-only`, with the
# release's own values, so it targets the release's Service) and created beside the release under
# a fresh run id. The release is never upgraded: its values never say k6.enabled=true, so a later
# `helm upgrade --reuse-values` (`make monitoring-up`) cannot run the load test again, and nothing
# rolls. Then: wait until the Job's pod exists and its container has started (or already ended),
# stream its logs, wait until it has terminated and exit with its exit code (k6 exits 99 when a
# threshold fails). A pod that never starts is reported with its events, and its Job deleted so
# that it cannot start later.
#
# Environment: KUBE_CONTEXT, NAMESPACE, RELEASE, CHART, K6_SCRIPT (from deploy/kube.mk);
# K6_START_TIMEOUT (seconds for the pod to appear and start, default 300); K6_RUN_TIMEOUT
# (seconds for the run to end once its log stream has, default 3600: a broken stream is not the
# end of a long run).
set -euo pipefail
: "${KUBE_CONTEXT:?}" "${NAMESPACE:?}" "${RELEASE:?}" "${CHART:?}" "${K6_SCRIPT:?}"
start_timeout=${K6_START_TIMEOUT:-300}
run_timeout=${K6_RUN_TIMEOUT:-3600}

# Every call names the cluster: never whatever context happens to be current.
kube() { kubectl --context "$KUBE_CONTEXT" --namespace "$NAMESPACE" "$@"; }

work=$(mktemp -d)
job=''
finished=0
cleanup() {
  # The ConfigMap only carried the scripts to this run; a Job that never got going is removed so
  # it cannot start behind our back. A finished Job stays for its TTL (an hour), for inspection.
  if [[ -n $job ]]; then
    if ((!finished)); then kube delete job "$job" --ignore-not-found --wait=false >/dev/null || true; fi
    kube delete configmap "$job" --ignore-not-found --wait=false >/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

helm get values "$RELEASE" --kube-context "$KUBE_CONTEXT" --namespace "$NAMESPACE" --output yaml >"$work/values.yaml"
# A release installed without values has `null` for them.
if [[ $(<"$work/values.yaml") == null ]]; then echo '{}' >"$work/values.yaml"; fi
run_id="run-$(date -u +%Y%m%d%H%M%S)-$RANDOM"
helm template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --values "$work/values.yaml" \
  --set k6.enabled=true --set-string "k6.script=$K6_SCRIPT" --set-string "k6.runId=$run_id" \
  --show-only templates/k6.yaml >"$work/k6.yaml"
created=$(kube create --filename "$work/k6.yaml" --output name)
job=$(sed -n 's|^job\.batch/||p' <<<"$created")
[[ -n $job ]] || { echo "k6: no Job in the rendered template" >&2; exit 1; }
echo "k6: job/$job runs $K6_SCRIPT"

# The Job controller creates the pod a moment after the Job, and the kubelet starts its container
# later still (image pull): `kubectl wait` on a pod that does not exist yet fails at once, and
# `logs -f` on a container that has not started fails too.
deadline=$((SECONDS + start_timeout))
pod=''
phase=''
last=''
until [[ $phase == Running || $phase == Succeeded || $phase == Failed ]]; do
  if ((SECONDS >= deadline)); then
    echo "k6: the Job's pod ${pod:-(not created)} did not start within ${start_timeout}s (phase ${phase:-none})" >&2
    if [[ -n $pod ]]; then kube describe "$pod" | sed -n '/^Events:/,$p' >&2 || true; fi
    exit 1
  fi
  # A failed call (the API server busy) is just another round.
  if [[ -z $pod ]]; then pod=$(kube get pods --selector "job-name=$job" --output name | head -n 1) || pod=''; fi
  if [[ -n $pod ]]; then phase=$(kube get "$pod" --output 'jsonpath={.status.phase}') || phase=''; fi
  if [[ "$pod $phase" != "$last" ]]; then
    echo "k6: ${pod:-waiting for the pod of job/$job} ${phase}"
    last="$pod $phase"
  fi
  [[ $phase == Running || $phase == Succeeded || $phase == Failed ]] || sleep 1
done

kube logs --follow "$pod" --container k6 || echo "k6: could not stream the logs of $pod" >&2

# `logs -f` also returns when its connection drops: the exit code is the container's, once ended.
deadline=$((SECONDS + run_timeout))
code=''
until [[ -n $code ]]; do
  # The phase first: the kubelet writes a final phase and the container's end in one status
  # update, so a pod already seen ended shows its exit code in the read that follows, if ever.
  phase=$(kube get "$pod" --output 'jsonpath={.status.phase}') || phase=''
  code=$(kube get "$pod" --output 'jsonpath={.status.containerStatuses[?(@.name=="k6")].state.terminated.exitCode}') || code=''
  [[ -n $code ]] && break
  if [[ $phase == Succeeded || $phase == Failed ]]; then
    echo "k6: $pod ended ($phase) without its container's exit code: $(kube get "$pod" --output 'jsonpath={.status.reason} {.status.message}' || true)" >&2
    exit 1
  fi
  if [[ -z ${told:-} ]]; then
    echo "k6: the log stream ended before $pod did; waiting for it to end" >&2
    told=1
  fi
  if ((SECONDS >= deadline)); then
    echo "k6: $pod has not ended ${run_timeout}s after its log stream did" >&2
    exit 1
  fi
  sleep 1
done
finished=1
echo "k6: exit code $code"
exit "$code"
