#!/usr/bin/env bash
# Builds the test Kafka broker (main.go beside this script, on franz-go's kfake at the version
# pinned in go.mod) into .cache/kafka/bin (ignored by git). Prints the path of the binary on
# stdout. Rebuilds only when main.go, go.mod or go.sum changed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=$(cd "$here/../.." && pwd)/.cache/kafka
binary=$cache/bin/kfake-broker

cd "$here"
stamp=$(cat main.go go.mod go.sum | sha256sum | cut -d' ' -f1)
if [[ -x $binary && $(cat "$cache/stamp" 2>/dev/null) == "$stamp" ]]; then
  echo "$binary"
  exit 0
fi

echo "building the kfake test broker (the first build takes a minute or two)..." >&2
mkdir -p "$cache/bin"
GOFLAGS=-buildvcs=false go build -o "$binary.tmp" .
mv "$binary.tmp" "$binary"
echo "$stamp" > "$cache/stamp"
echo "$binary"
