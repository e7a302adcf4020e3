#!/usr/bin/env bash
# `npm run build`, skipped when its output is newer than every source and build setting, so
# `make run` and `make cluster` start in seconds after the first time. The stamp is the file the
# build script copies last (see package.json), so a build that failed half-way is redone.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=dist/src/commands/restock-2.lua
if [[ -f $stamp && -z $(find src bench package.json package-lock.json tsconfig.json tsconfig.build.json -newer "$stamp" -print -quit) ]]; then
  exit 0
fi
echo '[build] compiling TypeScript into dist/'
npm run --silent build
