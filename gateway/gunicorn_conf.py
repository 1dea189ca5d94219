"""gunicorn settings for ``loangate serve`` (read from the gateway configuration).

A decision is CPU work plus one durable commit. With ``server.threads: 1`` each worker is a
sync worker answering one request at a time, and every decision pays its own flush; with more
threads (gthread workers) the decisions of one worker's threads share commits
(:mod:`gateway.log_writer`), which is where a durable log's throughput is. Scale with workers
(2 x cores + 1 by default, capped at 8) and hosts.
"""

from __future__ import annotations

import multiprocessing
import os

from gateway.config import load_config

_settings, _ = load_config()
_server = _settings.get("server", {})

bind = os.environ.get("LOANGATE_BIND") or _server.get("bind", "127.0.0.1:8000")
workers = int(
    os.environ.get("LOANGATE_WORKERS")
    or _server.get("workers")
    or min(2 * multiprocessing.cpu_count() + 1, 8)
)
# Threaded workers let concurrent decisions share one commit (gateway.log_writer).
threads = int(_server.get("threads") or 1)
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(_server.get("timeout_seconds", 30))
graceful_timeout = int(_server.get("graceful_timeout_seconds", 20))
keepalive = 5
# Each worker builds its own app (and database pool): nothing is shared across fork.
preload_app = False
accesslog = None  # the gateway writes its own structured access line
errorlog = "-"
loglevel = "warning"
proc_name = "loangate"


def worker_exit(server: object, worker: object) -> None:
    """A worker leaves after its last answer (SIGTERM lets the request in flight
    finish): stop and flush its background work (:mod:`gateway.shutdown`) within
    half the graceful timeout, so the master never has to kill it."""
    app = getattr(worker, "wsgi", None)  # None in the master, or if the app never loaded
    if app is None or "loangate" not in getattr(app, "extensions", {}):
        return
    from gateway.shutdown import stop_background

    stop_background(app, budget_seconds=max(1.0, graceful_timeout / 2))


def child_exit(server: object, worker: object) -> None:
    """A worker ended: its live gauges no longer count (counters are kept)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
