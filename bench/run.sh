#!/usr/bin/env bash
# The benchmarks; their figures go into docs/performance.md.
#
#   bash bench/run.sh all [--duration 10] [--sizes 1e3,1e5,1e7]     (= make bench)
#       every target in sequence, raw results in bench/results/*.json, then the generated
#       "Targets" section of docs/performance.md (bench/targets.py): REST vs echo on SQLite and
#       PostgreSQL, each beside MLflow's scoring server (installed once in bench/.mlflow-venv);
#       SOAP vs REST; batch scoring vs predict_proba; the growth table (10^3..10^7 decisions).
#       About 15 minutes plus the 10^7 fill on a quiet 2-core machine; --duration is seconds per
#       wrk run (2 interleaved rounds each), --sizes the growth table's log sizes.
#
# One bench at a time:
#   bash bench/run.sh [--db sqlite|postgresql] [--duration 10] [--mlflow]  REST decision path vs a Flask echo (wrk)
#   bash bench/run.sh soap [--db sqlite|postgresql]                      SOAP 1.1 / 1.2 beside REST (wrk)
#   bash bench/run.sh batch [--rows 100000]                              batch score vs raw predict_proba
#   bash bench/run.sh growth [--sizes 1e3,1e5,1e7]                       the hot path vs the size of the log (PostgreSQL), then the Targets table
#   bash bench/run.sh targets                                            rewrite the Targets section from bench/results/
#   bash bench/run.sh mlops [--db sqlite|postgresql]                     promotion under load, shadow-scoring cost (wrk)
#   bash bench/run.sh drift [--rows N]                                   a drift run over 1,000,000 decisions (PostgreSQL)
#   bash bench/run.sh export-memory [--rows 1000000]                     Parquet export peak memory (PostgreSQL)
# wrk comes from Debian's package, installed here when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
RESULTS=bench/results

ensure_wrk() {
  command -v wrk >/dev/null 2>&1 && return
  local sudo=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
  echo "wrk is missing: installing Debian's package" >&2
  $sudo apt-get install -y wrk || { $sudo apt-get update && $sudo apt-get install -y wrk; }
}

run_all() {
  local duration=10 sizes=1e3,1e5,1e7
  while [ $# -gt 0 ]; do
    case "$1" in
      --duration) duration="$2"; shift 2 ;;
      --sizes) sizes="$2"; shift 2 ;;
      *) echo "bench/run.sh all: unknown option $1" >&2; exit 2 ;;
    esac
  done
  ensure_wrk
  mkdir -p "$RESULTS"
  rm -f "$RESULTS"/*.json  # the Targets section reads only this run's results
  local status=0 d=(--duration "$duration")
  step() { echo; echo "=== $*"; "$@" || status=1; }
  step $PY bench/rest_vs_echo.py --db sqlite "${d[@]}" --mlflow --json "$RESULTS/rest-sqlite.json"
  step $PY bench/rest_vs_echo.py --db postgresql "${d[@]}" --mlflow --json "$RESULTS/rest-postgresql.json"
  step $PY bench/soap_vs_rest.py --db sqlite "${d[@]}" --json "$RESULTS/soap-sqlite.json"
  step $PY bench/batch_rows.py --json "$RESULTS/batch.json"
  step $PY bench/growth.py --sizes "$sizes" "${d[@]}" --json "$RESULTS/growth-postgresql.json"
  step $PY bench/targets.py --results "$RESULTS"
  return $status
}

case "${1:-}" in
  all) shift; run_all "$@" ;;
  soap) shift; ensure_wrk; exec $PY bench/soap_vs_rest.py "$@" ;;
  batch) shift; exec $PY bench/batch_rows.py "$@" ;;
  growth) shift; ensure_wrk; $PY bench/growth.py --json "$RESULTS/growth-postgresql.json" "$@" && exec $PY bench/targets.py --results "$RESULTS" ;;
  targets) shift; exec $PY bench/targets.py "$@" ;;
  drift) shift; exec $PY bench/drift_run.py "$@" ;;
  export-memory) shift; exec $PY bench/export_memory.py "$@" ;;
  mlops) shift; ensure_wrk; exec $PY bench/mlops.py "$@" ;;
  *) ensure_wrk; exec $PY bench/rest_vs_echo.py "$@" ;;
esac
