"""The ``crm_outbox`` table: which write-backs are due, claims on them, and their results.

A worker *claims* a row with one conditional UPDATE (``status = 'pending'`` and no live
lease), in its own short transaction. On PostgreSQL a concurrent UPDATE of the same row
waits for the first to commit and then re-checks the condition against the new row
version; on SQLite writers are serialised. Either way exactly one worker gets the row,
and keeps it until ``claimed_until``; a worker that dies holding a claim only delays the
row until the lease runs out. Results are written only by the holder of the claim token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, exists, func, or_, select, update

from gateway.crm.writeback import outbox
from gateway.db import aware

c = outbox.c
PENDING, DELIVERED, FAILED, SUPERSEDED = "pending", "delivered", "failed", "superseded"
STATUSES = (PENDING, DELIVERED, FAILED, SUPERSEDED)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Claimed:
    """A row this worker holds until ``claimed_until``."""

    decision_id: str
    connection: str
    object: str
    record_id: str
    payload: str
    attempts: int
    created_at: datetime
    token: str


def due(engine: Engine, now: datetime, limit: int) -> list[str]:
    """Ids of pending rows whose time has come, oldest first.

    A row waits while an older write-back to the same record is still pending, so one
    record's write-backs land in decision order.
    """
    older = outbox.alias("older")
    earlier_pending = exists().where(
        older.c.record_id == c.record_id,
        older.c.object == c.object,
        older.c.connection == c.connection,
        older.c.status == PENDING,
        older.c.decision_id < c.decision_id,
    )
    stmt = (
        select(c.decision_id)
        .where(
            c.status == PENDING,
            c.next_attempt_at <= now,
            or_(c.claimed_until.is_(None), c.claimed_until < now),
            ~earlier_pending,
        )
        .order_by(c.next_attempt_at, c.decision_id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [row.decision_id for row in conn.execute(stmt)]


def claim(
    engine: Engine, decision_id: str, token: str, now: datetime, lease: float
) -> Claimed | None:
    """Take ``decision_id`` for ``lease`` seconds, or ``None`` if another worker has it."""
    with engine.begin() as conn:
        taken = conn.execute(
            update(outbox)
            .where(
                c.decision_id == decision_id,
                c.status == PENDING,
                or_(c.claimed_until.is_(None), c.claimed_until < now),
            )
            .values(claimed_until=now + timedelta(seconds=lease), claim_token=token)
        ).rowcount
        if taken != 1:
            return None
        row = conn.execute(
            select(
                c.decision_id,
                c.connection,
                c.object,
                c.record_id,
                c.payload,
                c.attempts,
                c.created_at,
            ).where(c.decision_id == decision_id)
        ).one()
    return Claimed(
        row.decision_id,
        row.connection,
        row.object,
        row.record_id,
        row.payload,
        row.attempts,
        aware(row.created_at),
        token,
    )


def newer_delivered(engine: Engine, row: Claimed) -> bool:
    """Has a newer decision's write-back already reached ``row``'s record?"""
    stmt = select(
        exists().where(
            c.record_id == row.record_id,
            c.object == row.object,
            c.connection == row.connection,
            c.status == DELIVERED,
            c.decision_id > row.decision_id,
        )
    )
    with engine.connect() as conn:
        return bool(conn.execute(stmt).scalar())


def _finish(engine: Engine, row: Claimed, **values: Any) -> bool:
    """Write ``values`` to ``row`` if this worker still holds it; False if it lost it."""
    with engine.begin() as conn:
        done = conn.execute(
            update(outbox)
            .where(c.decision_id == row.decision_id, c.claim_token == row.token)
            .values(claimed_until=None, claim_token=None, **values)
        ).rowcount
    return done == 1


def delivered(engine: Engine, row: Claimed, status: int, now: datetime) -> bool:
    """Record a successful write-back."""
    return _finish(
        engine,
        row,
        status=DELIVERED,
        attempts=row.attempts + 1,
        last_status=status,
        last_error=None,
        delivered_at=now,
    )


def failed(engine: Engine, row: Claimed, status: int | None, error: str) -> bool:
    """Record a write-back that will never succeed as it stands."""
    return _finish(
        engine,
        row,
        status=FAILED,
        attempts=row.attempts + 1,
        last_status=status,
        last_error=error[:200],
    )


def superseded(engine: Engine, row: Claimed) -> bool:
    """Retire a write-back a newer decision's write-back has overtaken (never sent)."""
    return _finish(engine, row, status=SUPERSEDED)


def retry_at(engine: Engine, row: Claimed, when: datetime, status: int | None, error: str) -> bool:
    """Record a failed attempt worth repeating at ``when``."""
    return _finish(
        engine,
        row,
        attempts=row.attempts + 1,
        next_attempt_at=when,
        last_status=status,
        last_error=error[:200],
    )


def release(engine: Engine, row: Claimed) -> bool:
    """Give ``row`` back untouched (it was not attempted)."""
    return _finish(engine, row)


def requeue(engine: Engine, decision_ids: Sequence[str], now: datetime) -> int:
    """Make failed write-backs pending again (after the cause was fixed); how many."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                update(outbox)
                .where(c.decision_id.in_(list(decision_ids)), c.status == FAILED)
                .values(status=PENDING, next_attempt_at=now, attempts=0)
            ).rowcount
        )


def summary(engine: Engine) -> dict[str, Any]:
    """Rows per status, and the creation time of the oldest pending row."""
    with engine.connect() as conn:
        counts = dict.fromkeys(STATUSES, 0)
        for status, n in conn.execute(select(c.status, func.count()).group_by(c.status)):
            counts[status] = int(n)
        oldest = conn.execute(select(func.min(c.created_at)).where(c.status == PENDING)).scalar()
    return {"counts": counts, "oldest_pending": aware(oldest).isoformat() if oldest else None}


def rows(engine: Engine, status: str, limit: int = 100) -> list[dict[str, Any]]:
    """Rows of ``status``, oldest first, without their payloads."""
    stmt = (
        select(
            c.decision_id,
            c.object,
            c.record_id,
            c.attempts,
            c.next_attempt_at,
            c.last_status,
            c.last_error,
        )
        .where(c.status == status)
        .order_by(c.decision_id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [
            {**row._asdict(), "next_attempt_at": aware(row.next_attempt_at).isoformat()}
            for row in conn.execute(stmt)
        ]
