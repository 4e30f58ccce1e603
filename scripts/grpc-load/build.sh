#!/usr/bin/env bash
# Builds grpc-load, the Go load generator for `svc serve-grpc` beside this script, into
# .cache/grpc-load/grpc-load (ignored by git). Prints the path of the binary on stdout.
#
# The build is skipped when the binary is newer than every file here (sources, go.mod, go.sum,
# this script), so that bench scripts can call this before each use at no cost. The module
# versions are pinned by go.mod/go.sum; the first build downloads them through the Go proxy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=$(cd "$here/../.." && pwd)/.cache/grpc-load
binary=$cache/grpc-load

if [[ -x $binary && -z $(find "$here" -type f -newer "$binary" -print -quit) ]]; then
  echo "$binary"
  exit 0
fi

echo "building grpc-load..." >&2
mkdir -p "$cache"
cd "$here"
# -buildvcs=false: the binary does not depend on the state of the work tree (others edit it).
# -trimpath: no local paths in the binary. Written to a temporary name and renamed, so that an
# interrupted build never leaves a binary that looks up to date.
GOFLAGS=-buildvcs=false go build -trimpath -o "$binary.tmp" .
mv "$binary.tmp" "$binary"
echo "$binary"
