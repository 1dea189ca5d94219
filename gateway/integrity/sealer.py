"""The sealer: assigns committed decision rows to the chain in batches.

Writers never wait for it: a decision is committed with a plain INSERT, and the
sealer, running on its own (a background thread of the gateway, ``loangate decisions
seal``, or ``verify``), later reads unsealed rows, hashes them and writes their seals
and a checkpoint in one transaction. Several sealers (workers, hosts) are safe: on
PostgreSQL a transaction-scoped advisory lock lets one at a time through, and on every
database the primary keys of ``decision_seals`` and ``decision_checkpoints`` make a
losing racer roll back rather than fork the chain.

Rows are sealed in id (time) order. A row is sealed automatically only while its id is
younger than ``late_after`` seconds before the previous checkpoint: a row that appears
later than that (an insert back-dated by hand, or a transaction open that long) is left
for ``verify`` to report and an operator to seal deliberately (``seal --late``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, Table, func, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from gateway.integrity import merkle
from gateway.integrity.chain import GENESIS, Checkpoint, checkpoint_hash
from gateway.integrity.records import decisions, hash_selected, selected_columns
from gateway.tables import DecisionCheckpoint, DecisionSeal

log = structlog.get_logger(__name__)

seals: Table = DecisionSeal.__table__  # type: ignore[assignment]
checkpoints: Table = DecisionCheckpoint.__table__  # type: ignore[assignment]

#: Default most rows per checkpoint.
BATCH = 10_000
#: Default seconds a committed row may lag behind the chain and still be sealed.
LATE_AFTER = 60.0
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def id_floor(at: datetime) -> str:
    """The smallest decision id (ULID) that could have been issued at or after ``at``."""
    ms = max(0, int(at.timestamp() * 1000))
    chars = []
    for _ in range(10):
        ms, rem = divmod(ms, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars)) + "0" * 16


def id_time(decision_id: str) -> datetime:
    """When a decision id (ULID) was issued, from its first ten characters."""
    ms = 0
    for ch in decision_id[:10]:
        ms = ms * 32 + max(0, _ALPHABET.find(ch.upper()))
    return datetime.fromtimestamp(ms / 1000, UTC)


def window_floor(conn: Connection, prev: Checkpoint | None, late_after: float) -> str | None:
    """The smallest id still sealed automatically; ``None`` (everything) before the first seal.

    The window trails the newest sealed id (the chain advances in id order, so rows
    present before the first seal are all taken in turn), capped by the head's seal
    time so an id from the future cannot drag it forward.
    """
    if prev is None:
        return None
    newest = conn.execute(select(func.max(seals.c.decision_id))).scalar()
    at = datetime.fromisoformat(prev.sealed_at)
    if newest is not None:
        at = min(at, id_time(newest))
    return id_floor(at - timedelta(seconds=late_after))


def head(conn: Connection) -> Checkpoint | None:
    """The latest checkpoint, or ``None`` before the first seal."""
    row = conn.execute(select(checkpoints).order_by(checkpoints.c.id.desc()).limit(1)).first()
    return Checkpoint.from_row(row) if row is not None else None


def _lock(conn: Connection, wait: bool) -> bool:
    """Take the sealer's lock for this transaction; False if held and ``wait`` is off."""
    if conn.dialect.name != "postgresql":
        return True  # SQLite: one writer at a time anyway; primary keys settle races
    # One sealer at a time per schema, until the end of the transaction only.
    fn = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    got = conn.execute(text(f"SELECT {fn}(hashtext(current_schema() || '.seal'))")).scalar()
    return wait or bool(got)


def unsealed_query(floor: str | None, limit: int, dialect: str) -> Any:
    """Rows of ``decisions`` without a seal (ids >= ``floor`` if set), oldest first."""
    seal = select(seals.c.decision_id).where(seals.c.decision_id == decisions.c.id)
    conditions = []
    if floor is not None:
        conditions.append(decisions.c.id >= floor)
        seal = seal.where(seals.c.decision_id >= floor)  # keeps the anti-join to the window
    return (
        select(*selected_columns(dialect))
        .where(*conditions, ~seal.exists())
        .order_by(decisions.c.id)
        .limit(limit)
    )


@dataclass(frozen=True)
class SealResult:
    """What one sealing pass did: rows sealed and the checkpoint written (or ``None``)."""

    sealed: int
    checkpoint: Checkpoint | None


def seal_once(
    engine: Engine,
    *,
    batch: int = BATCH,
    late_after: float = LATE_AFTER,
    late: bool = False,
    wait: bool = True,
) -> SealResult:
    """Seal up to ``batch`` committed, unsealed rows under one new checkpoint.

    ``late=True`` also seals rows older than the window (an operator's decision). A
    concurrent sealer that won the race makes this pass seal nothing, as does one that
    holds the lock when ``wait`` is off.
    """
    try:
        with engine.begin() as conn:
            if not _lock(conn, wait):
                return SealResult(0, None)
            prev = head(conn)
            floor = None if late else window_floor(conn, prev, late_after)
            rows = conn.execute(unsealed_query(floor, batch, conn.dialect.name)).all()
            if not rows:
                return SealResult(0, None)
            hashes = [hash_selected(r) for r in rows]
            first = prev.last_seq + 1 if prev else 1
            cp_id = prev.id + 1 if prev else 1
            conn.execute(
                insert(seals),
                [
                    {
                        "seq": first + i,
                        "decision_id": r[0],
                        "record_hash": h.hex(),
                        "checkpoint_id": cp_id,
                    }
                    for i, (r, h) in enumerate(zip(rows, hashes, strict=True))
                ],
            )
            root = merkle.root(hashes).hex()
            last = first + len(rows) - 1
            prev_hash = prev.hash if prev else GENESIS
            now = datetime.now(UTC).isoformat()
            cp = Checkpoint(
                cp_id,
                first,
                last,
                root,
                prev_hash,
                now,
                checkpoint_hash(cp_id, first, last, root, prev_hash, now),
            )
            conn.execute(insert(checkpoints), cp.as_dict())
            return SealResult(len(rows), cp)
    except IntegrityError:
        return SealResult(0, None)  # another sealer took these numbers first


def seal_all(
    engine: Engine,
    *,
    batch: int = BATCH,
    late_after: float = LATE_AFTER,
    late: bool = False,
    wait: bool = True,
) -> int:
    """Seal until nothing is left to seal; the number of rows sealed."""
    total = 0
    while True:
        result = seal_once(engine, batch=batch, late_after=late_after, late=late, wait=wait)
        total += result.sealed
        if result.sealed < batch:
            return total


class SealerThread(threading.Thread):
    """Seals every ``interval`` seconds in the background, until :meth:`stop`.

    Database errors are logged and retried on the next tick: sealing is never on a
    request's path, and a row left unsealed for a while is only late, never lost.
    """

    def __init__(self, engine: Engine, interval: float, batch: int, late_after: float) -> None:
        super().__init__(name="loangate-sealer", daemon=True)
        self.engine, self.interval, self.batch, self.late_after = (
            engine,
            interval,
            batch,
            late_after,
        )
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                seal_all(self.engine, batch=self.batch, late_after=self.late_after, wait=False)
            except (DBAPIError, SQLAlchemyError, OSError) as exc:
                log.warning("sealer_failed", error=type(exc).__name__)

    def stop(self) -> None:
        self._halt.set()
