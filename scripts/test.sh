#!/usr/bin/env bash
# The whole suite, twice: on SQLite, then on a throwaway PostgreSQL cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/pytest -q -p no:cacheprovider "$@"
if pgurl=$(bash scripts/pg-cluster.sh start); then
  trap 'bash scripts/pg-cluster.sh stop' EXIT
  echo "== second run on PostgreSQL"
  KABARFEED_TEST_DATABASE_URL="$pgurl" .venv/bin/pytest -q -p no:cacheprovider "$@"
else
  if [ -n "${CI:-}" ]; then echo "PostgreSQL could not be started in CI" >&2; exit 1; fi
  echo "PostgreSQL not available: skipped the PostgreSQL run (see scripts/pg-cluster.sh)"
fi
