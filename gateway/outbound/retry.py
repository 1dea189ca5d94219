"""Budgets and retry delays for outgoing calls."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class Deadline:
    """A wall-clock budget that started when it was made (monotonic clock)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.at = clock() + seconds

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - self._clock()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0


@dataclass(frozen=True)
class RetryPolicy:
    """Up to ``max_attempts`` attempts, exponential backoff with jitter between them.

    The delay before attempt ``n + 1`` is ``min(max_backoff, backoff * 2**(n-1))``
    reduced by a random fraction of up to ``jitter`` (so many workers retrying the
    same outage do not hit the service in step).
    """

    max_attempts: int = 2
    backoff_ms: float = 50.0
    max_backoff_ms: float = 500.0
    jitter: float = 0.5

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any] | None, backoff_ms: float, max_backoff_ms: float
    ) -> RetryPolicy:
        """The policy of a connection's ``retries`` settings, with its kind's defaults."""
        s = settings or {}
        return cls(
            max_attempts=s.get("max_attempts", 2),
            backoff_ms=s.get("backoff_ms", backoff_ms),
            max_backoff_ms=s.get("max_backoff_ms", max_backoff_ms),
            jitter=s.get("jitter", 0.5),
        )

    def as_dict(self) -> dict[str, float]:
        """The settings, as connections describe them."""
        return {
            "max_attempts": self.max_attempts,
            "backoff_ms": self.backoff_ms,
            "max_backoff_ms": self.max_backoff_ms,
            "jitter": self.jitter,
        }

    def delay_seconds(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        base = min(self.max_backoff_ms, self.backoff_ms * 2.0 ** min(attempt - 1, 30))
        return base * (1.0 - self.jitter * rand()) / 1000.0
