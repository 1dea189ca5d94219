#!/usr/bin/env bash
# The REST benchmark in one command: bash bench/run.sh [--db sqlite|postgresql] [--duration 10]
# Installs wrk (Debian's package) when it is missing, then runs bench/rest_vs_echo.py.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
fi

if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk is missing: installing Debian's package" >&2
  if ! $SUDO apt-get install -y wrk; then
    $SUDO apt-get update
    $SUDO apt-get install -y wrk
  fi
fi

exec .venv/bin/python bench/rest_vs_echo.py "$@"
