"""What an outgoing call returns, and how it fails."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import structlog

log = structlog.get_logger(__name__)

#: Why a call failed, as recorded in decisions (``soap:<conn>:fallback(<reason>)``).
REASONS = (
    "timeout",  # the budget ran out (connect, read, or retries)
    "unavailable",  # nothing answered: connection refused, reset, DNS
    "http-error",  # an HTTP error status without a SOAP fault
    "fault",  # the service answered with a SOAP fault
    "bad-response",  # unparseable, forbidden (DTD, entities) or oversized reply
    "circuit-open",  # the breaker is open: the service was not called
    "busy",  # every call slot of the connection is taken
    "error",  # anything else (a bug): logged by type
)


class CallFailed(Exception):
    """An outgoing call gave no usable answer; ``reason`` is one of :data:`REASONS`."""

    def __init__(
        self,
        reason: str,
        detail: str = "",
        *,
        retryable: bool = False,
        trips_breaker: bool = True,
        attempts: int = 0,
    ) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        self.trips_breaker = trips_breaker
        self.attempts = attempts


@dataclass(frozen=True)
class CallResult:
    """A successful call: the response as plain data (dicts, lists, scalars)."""

    value: Mapping[str, Any]
    cached: bool
    attempts: int
    elapsed_ms: float


def log_failure(
    connection: str, operation: str, started: float, failure: CallFailed, breaker: str
) -> CallFailed:
    """Log a failed outgoing call (no arguments, no secrets) and give the failure back."""
    log.warning(
        "outbound_call",
        connection=connection,
        operation=operation,
        outcome="failed",
        reason=failure.reason,
        detail=failure.detail,
        attempts=failure.attempts,
        breaker=breaker,
        elapsed_ms=round((perf_counter() - started) * 1000.0, 3),
    )
    return failure
