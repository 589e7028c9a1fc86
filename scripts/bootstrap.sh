#!/bin/sh
# Installs the npm dependencies (Node 24 among them) when they are missing or older than the lock
# file, so `npm start` and `npm test` work on a fresh clone. The servers (Kafka, FerretDB, Redis) are
# provisioned by scripts/start.ts and scripts/test.ts through @taituri/devenv's startInfra.
set -eu
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/node ] || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[bootstrap] installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
