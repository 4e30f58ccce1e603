#!/usr/bin/env bash
# Runs a command with another line of Node.js first on PATH, e.g.
#   bash scripts/node/run.sh 24 node node_modules/vitest/vitest.mjs run
# The binary is the npm registry's `node` package (the newest release of that line), kept in
# .cache/node-<major> so that a machine with only npm can test every line svc supports.
set -euo pipefail
major="${1:?usage: scripts/node/run.sh MAJOR COMMAND [ARG...]}"
shift
root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$root/.cache/node-$major"
if [ ! -x "$dir/node_modules/node/bin/node" ]; then
  mkdir -p "$dir"
  npm install --no-save --no-package-lock --no-audit --no-fund --prefix "$dir" "node@$major" >&2
fi
export PATH="$dir/node_modules/node/bin:$PATH"
echo "scripts/node/run.sh: Node.js $(node --version)" >&2
exec "$@"
