#!/usr/bin/env bash
# Builds grpcurl, the gRPC command line client, at the version pinned in go.mod beside this script,
# into .cache/grpcurl/bin (ignored by git). Prints the path of the binary on stdout.
# The tests use it as an operator would, through server reflection; Debian 12 does not package it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=$(cd "$here/../.." && pwd)/.cache/grpcurl
binary=$cache/bin/grpcurl
module=github.com/fullstorydev/grpcurl

cd "$here"
version=$(go list -m -f '{{.Version}}' "$module")
if [[ -x $binary && $(cat "$cache/version" 2>/dev/null) == "$version" ]]; then
  echo "$binary"
  exit 0
fi

echo "building grpcurl $version (the first build takes a minute or two)..." >&2
mkdir -p "$cache/bin"
GOBIN=$cache/bin GOFLAGS=-buildvcs=false go install tool
echo "$version" > "$cache/version"
echo "$binary"
