"""The decision log's write path: raw inserts equal SQLAlchemy's, and shared commits."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from gateway import ids
from gateway.decision_log import DecisionLog, DuplicateIdempotencyKey, LogUnavailable
from gateway.log_writer import GroupCommitter, RowWriter
from gateway.reason_index import decision_reasons, reason_rows
from gateway.tables import CrmOutbox, Decision

decisions = Decision.__table__


def record(key: str | None = None, codes: tuple[str, ...] = ("R1", "R2")) -> tuple[dict, dict]:
    """A decisions row and its document, with reason codes for the companion index."""
    decision_id = ids.new_id()
    when = datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    document: dict[str, Any] = {
        "decision_id": decision_id,
        "reason_codes": [{"code": c} for c in codes],
    }
    row = {
        "id": decision_id,
        "received_at": when,
        "decided_at": when + timedelta(milliseconds=3),
        "pipeline": "credit-risk",
        "adapter": "rest",
        "client_id": "client-a",
        "application_id": "A-1",
        "idempotency_key": key,
        "request_hash": "0" * 64,
        "status_code": 201,
        "outcome": "approve",
        "probability": 0.125,
        "model_name": "german-credit",
        "model_version": 1,
        "model_sha256": "f" * 64,
        "policy_version": "1",
        "document": '{"x": 1}',
    }
    return row, document


def stored(engine: sa.Engine, table: sa.Table) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(table))]


def test_raw_rows_read_back_like_sqlalchemy_rows(engine: sa.Engine) -> None:
    """A row written by the writer is what SQLAlchemy writes for the same values."""
    raw_row, _ = record("k-raw")
    orm_row, _ = record("k-orm")
    RowWriter(engine).write([(decisions, [raw_row])])
    with engine.begin() as conn:
        conn.execute(sa.insert(decisions), [orm_row])
    by_id = {r["id"]: r for r in stored(engine, decisions)}
    raw, orm = by_id[raw_row["id"]], by_id[orm_row["id"]]
    for column in decisions.columns.keys():  # noqa: SIM118 (names, not columns)
        if column not in ("id", "idempotency_key"):
            assert raw[column] == orm[column], column
    # Times compare and sort alike whichever path wrote them.
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(sa.func.count()).where(decisions.c.received_at == raw_row["received_at"])
        ).scalar_one()
    assert found == 2


def test_scalar_defaults_are_filled(engine: sa.Engine) -> None:
    row, _ = record()
    outbox = CrmOutbox.__table__
    now = datetime.now(UTC)
    entry = {
        "decision_id": row["id"],
        "connection": "crm",
        "object": "Lead",
        "record_id": "00Q1",
        "payload": "{}",
        "status": "pending",
        "next_attempt_at": now,
        "created_at": now,
    }
    RowWriter(engine).write([(outbox, [entry]), (decisions, [row])])  # parents first anyway
    assert stored(engine, outbox)[0]["attempts"] == 0


def test_a_refused_write_leaves_nothing(engine: sa.Engine) -> None:
    log = DecisionLog(engine, companions=[reason_rows])
    first, doc = record("same-key")
    log.append(first, doc)
    second, doc2 = record("same-key")
    with pytest.raises(DuplicateIdempotencyKey):
        log.append(second, doc2)
    assert [r["id"] for r in stored(engine, decisions)] == [first["id"]]
    assert {r["decision_id"] for r in stored(engine, decision_reasons)} == {first["id"]}
    # The writer is usable after the refusal.
    third, doc3 = record("other-key")
    log.append(third, doc3)
    assert len(stored(engine, decisions)) == 2


class Gate:
    """Holds the first shared commit until every other write of ``total`` is queued behind it."""

    def __init__(self, committer: GroupCommitter, total: int) -> None:
        self.committer, self.total = committer, total
        self.inner = committer.writer.write
        self.first_batch = 0
        committer.writer.write = self.write  # type: ignore[method-assign]

    def write(self, groups: Any) -> None:
        if not self.first_batch:
            self.first_batch = sum(len(rows) for table, rows in groups if table is decisions)
            while self.committer._queue.qsize() < self.total - self.first_batch:
                threading.Event().wait(0.005)
        self.inner(groups)

    @property
    def expected_commits(self) -> int:
        """The first commit, then one for everything queued behind it."""
        return 1 if self.first_batch == self.total else 2


def run_threads(log: DecisionLog, items: list[tuple[dict, dict]]) -> dict[str, BaseException]:
    errors: dict[str, BaseException] = {}

    def one(row: dict, doc: dict) -> None:
        try:
            log.append(row, doc)
        except BaseException as exc:
            errors[row["id"]] = exc

    threads = [threading.Thread(target=one, args=item) for item in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a write never returned"
    return errors


def test_concurrent_writes_share_commits(engine: sa.Engine) -> None:
    log = DecisionLog(engine, companions=[reason_rows])
    log.serve(threads=8)
    committer = log.group_commit
    assert committer is not None
    gate = Gate(committer, total=8)
    items = [record(f"k{i}") for i in range(8)]
    assert run_threads(log, items) == {}
    assert committer.writes == 8
    assert committer.commits == gate.expected_commits
    assert {r["id"] for r in stored(engine, decisions)} == {row["id"] for row, _ in items}
    assert len(stored(engine, decision_reasons)) == 16
    log._writer.close()


def test_only_the_write_at_fault_fails_in_a_shared_commit(engine: sa.Engine) -> None:
    log = DecisionLog(engine, companions=[reason_rows])
    taken, doc = record("taken")
    log.append(taken, doc)
    log.serve(threads=8)
    assert log.group_commit is not None
    Gate(log.group_commit, total=6)
    duplicate = record("taken")
    items = [record(f"free{i}") for i in range(5)] + [duplicate]
    errors = run_threads(log, items)
    assert set(errors) == {duplicate[0]["id"]}
    assert isinstance(errors[duplicate[0]["id"]], DuplicateIdempotencyKey)
    ids_stored = {r["id"] for r in stored(engine, decisions)}
    assert ids_stored == {taken["id"]} | {row["id"] for row, _ in items[:5]}
    log._writer.close()


def test_a_database_that_is_gone_fails_every_waiting_write(tmp_path: Any) -> None:
    from gateway import db

    engine = db.make_engine(f"sqlite:///{tmp_path / 'gone.db'}")  # no schema: every write fails
    log = DecisionLog(engine)
    log.serve(threads=4)
    errors = run_threads(log, [record() for _ in range(4)])
    assert len(errors) == 4
    assert all(isinstance(e, LogUnavailable) for e in errors.values())
    engine.dispose()
