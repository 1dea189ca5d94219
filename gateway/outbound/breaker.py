"""A circuit breaker: stop calling a service that keeps failing, probe it later.

Closed: calls go through; ``failure_threshold`` consecutive failures open it.
Open: calls are refused without reaching the service for ``open_seconds``.
Half-open: then up to ``half_open_probes`` calls go through at once; a success
closes the breaker, a failure opens it again for another ``open_seconds``.
State is per process (per gunicorn worker).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitBreaker:
    """Thread-safe breaker; ``clock`` is monotonic seconds (injectable for tests)."""

    def __init__(
        self,
        failure_threshold: int = 5,
        open_seconds: float = 30.0,
        half_open_probes: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self.half_open_probes = half_open_probes
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probes = 0

    def _current(self) -> str:
        if self._opened_at is None:
            return CLOSED
        if self._clock() - self._opened_at < self.open_seconds:
            return OPEN
        return HALF_OPEN

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None) -> CircuitBreaker:
        """The breaker of a connection's ``breaker`` settings."""
        s = settings or {}
        return cls(
            failure_threshold=s.get("failure_threshold", 5),
            open_seconds=s.get("open_seconds", 30),
            half_open_probes=s.get("half_open_probes", 1),
        )

    def as_dict(self) -> dict[str, Any]:
        """The state and settings, as connections describe them."""
        return {
            "state": self.state,
            "failure_threshold": self.failure_threshold,
            "open_seconds": self.open_seconds,
            "half_open_probes": self.half_open_probes,
        }

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open``."""
        with self._lock:
            return self._current()

    def allow(self) -> bool:
        """May a call go out now? A ``True`` must be followed by exactly one record."""
        with self._lock:
            state = self._current()
            if state == CLOSED:
                return True
            if state == HALF_OPEN and self._probes < self.half_open_probes:
                self._probes += 1
                return True
            return False

    def record_success(self) -> None:
        """A call got an answer: close the breaker."""
        with self._lock:
            if self._current() == OPEN:
                return  # a late answer from before it opened does not close it early
            self._failures = 0
            self._opened_at = None
            self._probes = 0

    def record_failure(self) -> None:
        """A call failed: count it, and open (or reopen) the breaker when due."""
        with self._lock:
            state = self._current()
            if state == OPEN:
                return
            if state == HALF_OPEN:
                self._open()
                return
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open()

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._probes = 0
        self._failures = 0
