"""The gateway's own sealer: a background thread in each server process.

Every worker runs one; they take turns through the sealer's lock (a worker that finds
it held skips its tick), so the unsealed window is about ``seal_interval_seconds``
whatever the number of workers and hosts.
"""

from __future__ import annotations

import atexit
from typing import Any

from flask import Flask

from gateway.integrity.sealer import SealerThread
from gateway.state import gateway_state


def settings(config: dict[str, Any]) -> dict[str, Any]:
    """The ``integrity`` section of a validated gateway configuration."""
    section: dict[str, Any] = config["integrity"]
    return section


def start_sealer(app: Flask) -> SealerThread | None:
    """Start sealing in the background for ``app`` (unless ``integrity.enabled`` is false)."""
    state = gateway_state(app)
    conf = settings(state.config)
    if not conf["enabled"]:
        return None
    thread = SealerThread(
        state.engine, conf["seal_interval_seconds"], conf["batch"], conf["late_after_seconds"]
    )
    thread.start()
    atexit.register(thread.stop)
    state.extras["sealer"] = thread
    return thread
