#!/usr/bin/env bash
# Start the local PostgreSQL and Redis the test suite needs, if they are installed and stopped.
# In CI (CI=true) a PostgreSQL or Redis that cannot be reached fails the run.
set -u
# pdftotext (poppler-utils) reads the notice PDFs back in the tests.
command -v pdftotext >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq poppler-utils >/dev/null) \
  || echo "warning: could not install poppler-utils; the notice PDF tests will be skipped" >&2
# wrk (Debian's package) loads a real server in the soak test (and the benchmarks).
command -v wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null) \
  || echo "warning: could not install wrk; the soak test fails in CI without it" >&2
# Debian's Chromium drives the console's browser tests (Playwright's own browser download is
# not reachable here); in CI a missing browser fails those tests.
command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) \
  || echo "warning: could not install chromium; the console's browser tests fail in CI without it" >&2
# Redis at 127.0.0.1:6379: the shared rate-limit store's tests. Started here when it is
# installed and not answering; in CI a Redis that cannot be reached fails the run.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  command -v redis-server >/dev/null 2>&1 \
    || (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null) \
    || echo "warning: could not install redis-server" >&2
  if command -v redis-server >/dev/null 2>&1; then
    redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save "" --appendonly no >/dev/null || true
    for _ in $(seq 1 20); do
      redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
      sleep 0.5
    done
  fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    if [ "${CI:-}" = "true" ]; then
      echo "Redis is not reachable at 127.0.0.1:6379: the rate-limit tests need it" >&2
      exit 1
    fi
    echo "warning: Redis is not reachable; its tests will be skipped (a failure in CI)" >&2
  fi
fi
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
