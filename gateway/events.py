"""Event hooks run off the response path.

Events (``decision_logged``, ...) are queued and delivered to plugin hooks by one
background thread per process. A full queue drops the event (counted and logged)
rather than delaying a decision; a failing hook is logged and never propagates.
"""

from __future__ import annotations

import os
import queue
import threading
from time import perf_counter
from typing import Any

import orjson
import pluggy
import structlog
from flask import Flask

log = structlog.get_logger(__name__)


class Serialized(bytes):
    """A JSON payload handed to event hooks as a freshly parsed copy per plugin."""


class EventDispatcher:
    """Delivers hook calls asynchronously within a bounded queue."""

    def __init__(
        self,
        pm: pluggy.PluginManager,
        queue_size: int = 1000,
        budget_ms: float = 200,
        app: Flask | None = None,
    ):
        self.pm = pm
        self.app = app
        self.budget_ms = budget_ms
        self.queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(queue_size)
        self.dropped = 0
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def has_listeners(self, hook_name: str) -> bool:
        return bool(getattr(self.pm.hook, hook_name).get_hookimpls())

    def emit(self, hook_name: str, **kwargs: Any) -> None:
        """Queue a hook call; never blocks, never raises."""
        if not self.has_listeners(hook_name):
            return
        self._ensure_thread()
        try:
            self.queue.put_nowait((hook_name, kwargs))
        except queue.Full:
            self.dropped += 1
            log.warning("event_dropped", hook=hook_name, dropped_total=self.dropped)

    def _ensure_thread(self) -> None:
        # A thread does not survive fork: (re)start it in each gunicorn worker.
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="loangate-events", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            hook_name, kwargs = item
            if self.app is not None:
                kwargs.setdefault("app", self.app)
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                started = perf_counter()
                try:
                    # Each plugin gets its own copy of a serialised record, parsed here,
                    # off the response path.
                    args = {
                        k: orjson.loads(bytes(v)) if isinstance(v, Serialized) else v
                        for k, v in kwargs.items()
                        if k in impl.argnames
                    }
                    impl.function(**args)
                except Exception as exc:
                    log.error(
                        "event_hook_failed",
                        hook=hook_name,
                        plugin=impl.plugin_name,
                        error=type(exc).__name__,
                    )
                elapsed = (perf_counter() - started) * 1000
                if elapsed > self.budget_ms:
                    log.warning(
                        "event_hook_slow",
                        hook=hook_name,
                        plugin=impl.plugin_name,
                        ms=round(elapsed, 1),
                    )
            self.queue.task_done()

    def drain(self, timeout: float = 5.0) -> None:
        """Wait until queued events are delivered (tests, graceful shutdown)."""
        done = threading.Event()

        def _wait() -> None:
            self.queue.join()
            done.set()

        threading.Thread(target=_wait, daemon=True).start()
        done.wait(timeout)
