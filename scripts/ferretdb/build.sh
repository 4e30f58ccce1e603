#!/usr/bin/env bash
# Builds FerretDB's own `ferretdb` command, at the version pinned in go.mod beside this script,
# into .cache/ferretdb/bin (ignored by git). Prints the path of the binary on stdout.
#
# Why not a plain `go install`: a release build of FerretDB reads its version from
# build/version/version.txt, a file its release tooling generates and the module proxy does not
# ship, and panics without it. We copy the pinned module source into the cache, write that one
# file, and build the unchanged command from the copy through a throwaway go.work.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=$(cd "$here/../.." && pwd)/.cache/ferretdb
binary=$cache/bin/ferretdb
module=github.com/FerretDB/FerretDB

cd "$here"
version=$(go list -m -f '{{.Version}}' "$module")
if [[ -x $binary && $(cat "$cache/version" 2>/dev/null) == "$version" ]]; then
  echo "$binary"
  exit 0
fi

echo "building FerretDB $version (the first build takes a few minutes)..." >&2
source_dir=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
rm -rf "$cache/src"
mkdir -p "$cache/bin"
cp -r "$source_dir" "$cache/src"
chmod -R u+w "$cache/src"
echo "$version" > "$cache/src/build/version/version.txt"
cat > "$cache/go.work" <<WORK
go $(go mod edit -json | sed -n 's/^[[:space:]]*"Go": "\(.*\)",*$/\1/p')

use $here

replace $module $version => ./src
WORK
GOWORK=$cache/go.work GOBIN=$cache/bin GOFLAGS=-buildvcs=false go install -v "$module/cmd/ferretdb" 2>&1 |
  while read -r package; do echo "  compiled $package" >&2; done
echo "$version" > "$cache/version"
echo "$binary"
