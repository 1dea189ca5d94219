"""Delivering the outbox: PATCH each due write-back to its CRM record, record the result.

A pass claims due rows one by one and sends each once (the connection may retry a
blip within its own ``retries``). Success marks the row delivered. A 4xx other than
401/408/429 fails it for good. Anything else is tried again after an exponential
backoff with jitter (``delivery.backoff_seconds`` doubling up to
``delivery.max_backoff_seconds``, or later if the CRM sent ``Retry-After``), for as
long as the row is younger than ``delivery.max_age_hours``. While the connection's
circuit breaker is open a pass stops early and leaves the rows as they were.

Delivery is at least once: a worker that dies after the CRM applied a PATCH but before
recording it leaves the row to be sent again when its lease ends. PATCH sets the same
fields to the same values, and ``Decision_Id__c`` (or whichever field receives the
decision id) lets the CRM side see a repeat.
"""

from __future__ import annotations

import atexit
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
import structlog
from flask import Flask
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from gateway.crm import outbox
from gateway.crm.writeback import Writeback
from gateway.outbound.calls import CallFailed
from gateway.outbound.rest import HttpStatusFailed
from gateway.outbound.retry import RetryPolicy
from gateway.state import gateway_state

log = structlog.get_logger(__name__)


@dataclass
class PassResult:
    """What one pass did."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    superseded: int = 0
    skipped: int = 0  # claimed by another worker first, or left while the breaker is open
    claimed: int = 0
    stopped_by_breaker: bool = False


class Deliverer:
    """Works the outbox of one write-back configuration on ``engine``."""

    def __init__(
        self,
        engine: Engine,
        writeback: Writeback,
        clock: Callable[[], datetime] = outbox.utcnow,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.engine = engine
        self.writeback = writeback
        self.connection = writeback.connection
        d = writeback.settings.delivery
        self.delivery = d
        self.backoff = RetryPolicy(
            max_attempts=1,
            backoff_ms=d.backoff_seconds * 1000.0,
            max_backoff_ms=d.max_backoff_seconds * 1000.0,
            jitter=d.jitter,
        )
        self._clock = clock
        self._rand = rand

    def run_once(self) -> PassResult:
        """One pass over the rows due now (at most ``delivery.batch``)."""
        result = PassResult()
        ids = outbox.due(self.engine, self._clock(), self.delivery.batch)
        for decision_id in ids:
            if result.stopped_by_breaker:
                result.skipped += 1
                continue
            row = outbox.claim(
                self.engine,
                decision_id,
                uuid.uuid4().hex,
                self._clock(),
                self.delivery.lease_seconds,
            )
            if row is None:
                result.skipped += 1
                continue
            result.claimed += 1
            self._deliver(row, result)
        return result

    def drain(self, max_passes: int = 1000) -> PassResult:
        """Passes until nothing more is due now (or the breaker opens); their totals."""
        total = PassResult()
        for _ in range(max_passes):
            one = self.run_once()
            for name in ("delivered", "retrying", "failed", "superseded", "skipped", "claimed"):
                setattr(total, name, getattr(total, name) + getattr(one, name))
            total.stopped_by_breaker = one.stopped_by_breaker
            if one.claimed == 0 or one.stopped_by_breaker or one.retrying + one.skipped > 0:
                break
        return total

    def delay_after(self, attempts: int) -> float:
        """Seconds to wait after a row's ``attempts``-th failed attempt (before jitter:
        ``backoff_seconds * 2**(attempts-1)``, capped at ``max_backoff_seconds``)."""
        return self.backoff.delay_seconds(attempts, self._rand)

    def _deliver(self, row: outbox.Claimed, result: PassResult) -> None:
        settings = self.writeback.settings
        if outbox.newer_delivered(self.engine, row):
            outbox.superseded(self.engine, row)
            result.superseded += 1
            log.info("crm_writeback_superseded", decision_id=row.decision_id)
            return
        try:
            answer = self.connection.request(
                "PATCH",
                settings.record_path(row.record_id),
                orjson.loads(row.payload),
                correlation_id=row.decision_id,
            )
        except CallFailed as failure:
            self._failed(row, failure, result)
            return
        outbox.delivered(self.engine, row, answer.status, self._clock())
        result.delivered += 1
        log.info(
            "crm_writeback_delivered",
            decision_id=row.decision_id,
            connection=row.connection,
            attempts=row.attempts + 1,
        )

    def _failed(self, row: outbox.Claimed, failure: CallFailed, result: PassResult) -> None:
        status = failure.status if isinstance(failure, HttpStatusFailed) else None
        error = f"{failure.reason}: {failure.detail}" if failure.detail else failure.reason
        if failure.reason == "circuit-open":
            outbox.release(self.engine, row)
            result.skipped += 1
            result.stopped_by_breaker = True
            return
        now = self._clock()
        too_old = now - row.created_at > timedelta(hours=self.delivery.max_age_hours)
        if not failure.retryable or too_old:
            if too_old and failure.retryable:
                error = f"gave up after {row.attempts + 1} attempts: {error}"
            outbox.failed(self.engine, row, status, error)
            result.failed += 1
            log.warning(
                "crm_writeback_failed",
                decision_id=row.decision_id,
                connection=row.connection,
                status=status,
                error=error,
            )
            return
        delay = self.delay_after(row.attempts + 1)
        if isinstance(failure, HttpStatusFailed) and failure.retry_after is not None:
            delay = max(delay, min(failure.retry_after, self.delivery.max_backoff_seconds))
        outbox.retry_at(self.engine, row, now + timedelta(seconds=delay), status, error)
        result.retrying += 1
        log.info(
            "crm_writeback_retrying",
            decision_id=row.decision_id,
            attempts=row.attempts + 1,
            error=error,
            delay_seconds=round(delay, 3),
        )


class DeliveryThread(threading.Thread):
    """Passes over the outbox every ``interval`` seconds in the background, until :meth:`stop`.

    Database and unexpected errors are logged and the next tick tries again: a row is
    only ever delayed by them, never lost.
    """

    def __init__(self, deliverer: Deliverer, interval: float) -> None:
        super().__init__(name="loangate-crm-delivery", daemon=True)
        self.deliverer = deliverer
        self.interval = interval
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.deliverer.drain()
            except (DBAPIError, SQLAlchemyError, OSError) as exc:
                log.warning("crm_delivery_failed", error=type(exc).__name__)
            except Exception as exc:  # a bug must not end the thread for good
                log.error("crm_delivery_error", error=type(exc).__name__)

    def stop(self) -> None:
        self._halt.set()


def start_delivery(app: Flask) -> DeliveryThread | None:
    """Start delivering write-backs in the background for ``app``, if configured so."""
    state = gateway_state(app)
    writeback: Writeback | None = state.extras.get("crm_writeback")
    if writeback is None or not writeback.settings.delivery.in_server:
        return None
    thread = DeliveryThread(
        Deliverer(state.engine, writeback), writeback.settings.delivery.interval_seconds
    )
    thread.start()
    atexit.register(thread.stop)
    state.extras["crm_delivery"] = thread
    return thread
