#!/usr/bin/env bash
# Start the local PostgreSQL the test suite needs, if it is installed and stopped.
# In CI (CI=true) a PostgreSQL that cannot be reached fails the run.
set -u
# pdftotext (poppler-utils) reads the notice PDFs back in the tests.
command -v pdftotext >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq poppler-utils >/dev/null) \
  || echo "warning: could not install poppler-utils; the notice PDF tests will be skipped" >&2
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  exit 0
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  version=$(ls /etc/postgresql | head -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && exit 0
    sleep 1
  done
fi
if [ "${CI:-}" = "true" ]; then
  echo "PostgreSQL is not reachable at 127.0.0.1:5432: the database tests need it" >&2
  exit 1
fi
echo "warning: PostgreSQL is not reachable; its tests will be skipped (a failure in CI)" >&2
