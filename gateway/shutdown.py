"""Graceful stop of a server process: what runs after its last request is answered.

gunicorn's ``SIGTERM`` (``docker stop``, Kubernetes, systemd) closes the listening
socket, lets each worker finish the request it is serving (for up to
``server.graceful_timeout_seconds``), and then calls ``worker_exit`` in the worker
(:mod:`gateway.gunicorn_conf`), which calls :func:`stop_background`:

1. the periodic threads stop taking new ticks (sealer, CRM delivery, model refresh,
   batch resumer) and a tick already under way is given time to finish;
2. queued events (``decision_logged`` hooks) are delivered;
3. queued shadow samples are scored and written;
4. one last seal pass covers this worker's latest decisions (skipped if another
   process holds the sealer's lock, abandoned if the database makes it wait past the
   budget: the rows are then sealed by the next sealer, late);
5. the rate-limit store and the database pool are closed.

Each step has its share of one time budget and a failing step is logged and skipped:
nothing here can hold the process past the master's deadline, and nothing that was
answered depends on it (a decision is committed before its answer leaves). A batch
job still running is not waited for: its lease runs out and another process resumes
it (``gateway.batch.jobs``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog
from flask import Flask

from gateway.state import gateway_state

log = structlog.get_logger(__name__)

#: The periodic threads of a server process (``gateway.wsgi``), by their ``extras`` key.
PERIODIC = ("sealer", "crm_delivery", "model_refresh", "batch_resumer")


def stop_background(app: Flask, budget_seconds: float = 10.0) -> dict[str, Any]:
    """Stop and flush ``app``'s background work within ``budget_seconds``; what was done."""
    state = gateway_state(app)
    extras = state.extras
    deadline = time.monotonic() + budget_seconds
    done: dict[str, Any] = {}

    def left(share: float = 1.0) -> float:
        return max(0.0, (deadline - time.monotonic()) * share)

    threads = [(name, extras[name]) for name in PERIODIC if extras.get(name) is not None]
    for _name, thread in threads:
        thread.stop()
    for name, thread in threads:
        thread.join(left(0.5))
        done[name] = "stopped" if not thread.is_alive() else "still running"
    events = extras.get("events")
    if events is not None:
        events.drain(left(0.5))
        done["events_pending"] = events.queue.unfinished_tasks
    decisions = extras.get("decisions")
    shadows = getattr(decisions, "shadows", None)
    if shadows is not None:
        done["shadows_flushed"] = shadows.flush(left(0.5))
    if extras.get("sealer") is not None and left() > 0:
        done["sealed"] = _within(left(), _last_seal, state)
    limiter = extras.get("rate_limiter")
    close = getattr(getattr(limiter, "store", None), "close", None)
    if close is not None:
        _quietly(close)
    _quietly(state.engine.dispose)
    log.info("worker_stopped", **done)
    return done


def _last_seal(state: Any) -> int | str:
    from gateway.integrity.background import settings
    from gateway.integrity.sealer import seal_all

    conf = settings(state.config)
    try:
        return seal_all(
            state.engine, batch=conf["batch"], late_after=conf["late_after_seconds"], wait=False
        )
    except Exception as exc:  # the database is down: the rows are sealed later, late
        log.warning("final_seal_failed", error=type(exc).__name__)
        return "failed"


def _within(seconds: float, fn: Any, *args: Any) -> Any:
    """``fn(*args)``, or ``"timed out"`` when it takes longer than ``seconds`` (it is then
    left to the process's exit: a transaction it had open is rolled back, nothing is lost)."""
    result: list[Any] = ["timed out"]

    def run() -> None:
        result[0] = fn(*args)

    thread = threading.Thread(target=run, name="loangate-shutdown", daemon=True)
    thread.start()
    thread.join(seconds)
    return result[0]


def _quietly(fn: Any) -> None:
    try:
        fn()
    except Exception as exc:
        log.warning(
            "shutdown_step_failed", step=getattr(fn, "__qualname__", "?"), error=type(exc).__name__
        )
