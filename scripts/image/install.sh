#!/usr/bin/env bash
# The Debian packages that building and running images here needs: podman and buildah (with
# Debian's runc as their runtime) and mmdebstrap for the stand-in base. Installed once, only by
# the targets that use them (`make image`, `make image-test`, the local cluster).
set -euo pipefail
missing=()
for tool in podman:podman buildah:buildah runc:runc mmdebstrap:mmdebstrap; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
((${#missing[@]})) || exit 0
echo "[image] installing ${missing[*]} (apt)"
SUDO=$([[ $(id -u) == 0 ]] && echo "" || echo sudo)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
