#!/usr/bin/env bash
# The benchmarks, one command each; their figures go into docs/performance.md.
#   bash bench/run.sh [--db sqlite|postgresql] [--duration 10]   REST decision path vs a Flask echo (wrk)
#   bash bench/run.sh mlops [--db sqlite|postgresql]              promotion under load, shadow-scoring cost (wrk)
#   bash bench/run.sh drift [--rows N]                             a drift run over 1,000,000 decisions (PostgreSQL)
#   bash bench/run.sh export-memory [--rows 1000000]               Parquet export peak memory (PostgreSQL)
# wrk comes from Debian's package, installed here when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

ensure_wrk() {
  command -v wrk >/dev/null 2>&1 && return
  local sudo=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
  echo "wrk is missing: installing Debian's package" >&2
  $sudo apt-get install -y wrk || { $sudo apt-get update && $sudo apt-get install -y wrk; }
}

case "${1:-}" in
  drift) shift; exec .venv/bin/python bench/drift_run.py "$@" ;;
  export-memory) shift; exec .venv/bin/python bench/export_memory.py "$@" ;;
  mlops) shift; ensure_wrk; exec .venv/bin/python bench/mlops.py "$@" ;;
  *) ensure_wrk; exec .venv/bin/python bench/rest_vs_echo.py "$@" ;;
esac
