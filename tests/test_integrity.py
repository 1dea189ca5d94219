"""Tamper evidence: sealing, verify naming the altered or missing record, append-only."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from gateway import ids
from gateway.decision_log import DecisionLog
from gateway.integrity.sealer import seal_all, seal_once
from gateway.integrity.verify import verify
from tests.integrity_helpers import append_rows, synthetic_row, tamper


def test_empty_log_verifies(engine: sa.Engine) -> None:
    report = verify(engine)
    assert report.ok and report.records == 0 and report.checkpoints == 0


def test_sealed_log_verifies_and_chains_checkpoints(engine: sa.Engine) -> None:
    append_rows(engine, 25)
    assert seal_all(engine, batch=10) == 25
    append_rows(engine, 3, start=25)
    report = verify(engine)
    assert report.ok, report.findings
    assert report.checkpoints == 3 and report.records == 25 and report.pending == 3
    assert seal_all(engine) == 3
    report = verify(engine)
    assert report.ok and report.records == 28 and report.pending == 0 and report.checkpoints == 4


def test_changed_probability_is_named(engine: sa.Engine) -> None:
    victims = append_rows(engine, 12)
    seal_all(engine)
    tamper(engine, "UPDATE decisions SET probability = 0.01 WHERE id = :id", id=victims[7])
    report = verify(engine)
    assert not report.ok
    first = report.findings[0]
    assert (first.kind, first.decision_id, first.seq) == ("altered", victims[7], 8)


def test_changed_document_is_named(engine: sa.Engine) -> None:
    victims = append_rows(engine, 5)
    seal_all(engine)
    tamper(
        engine,
        "UPDATE decisions SET document = replace(document, 'approve', 'decline') WHERE id = :id",
        id=victims[0],
    )
    first = verify(engine).findings[0]
    assert (first.kind, first.decision_id) == ("altered", victims[0])


def test_deleted_record_is_named(engine: sa.Engine) -> None:
    victims = append_rows(engine, 6)
    seal_all(engine)
    tamper(engine, "DELETE FROM decisions WHERE id = :id", id=victims[2])
    first = verify(engine).findings[0]
    assert (first.kind, first.decision_id, first.seq) == ("missing", victims[2], 3)


def test_deleted_record_and_seal_is_a_gap(engine: sa.Engine) -> None:
    victims = append_rows(engine, 6)
    seal_all(engine)
    tamper(engine, "DELETE FROM decision_seals WHERE decision_id = :id", id=victims[4])
    tamper(engine, "DELETE FROM decisions WHERE id = :id", id=victims[4])
    first = verify(engine).findings[0]
    assert (first.kind, first.seq) == ("gap", 5)


def test_rehashed_seal_still_breaks_the_merkle_root(engine: sa.Engine) -> None:
    victims = append_rows(engine, 4)
    seal_all(engine)
    tamper(engine, "UPDATE decisions SET outcome = 'decline' WHERE id = :id", id=victims[1])
    # a careful forger recomputes the row's record hash too
    from gateway.integrity.records import hash_of_row

    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM decisions WHERE id = :id"), {"id": victims[1]})
        new_hash = hash_of_row(row.mappings().one()).hex()
    tamper(
        engine,
        "UPDATE decision_seals SET record_hash = :h WHERE decision_id = :id",
        h=new_hash,
        id=victims[1],
    )
    kinds = {f.kind for f in verify(engine).findings}
    assert kinds == {"checkpoint"}


def test_backdated_forged_row_is_named(engine: sa.Engine) -> None:
    append_rows(engine, 3)
    seal_all(engine)
    # a row slipped in later, with an id (and times) from an hour ago
    old = datetime.now(UTC) - timedelta(hours=1)
    forged_id = _id_at(old)
    DecisionLog(engine).append(synthetic_row(99, decision_id=forged_id, at=old))
    assert seal_all(engine) == 0  # the sealer will not launder it into the chain
    report = verify(engine)
    assert [(f.kind, f.decision_id) for f in report.findings] == [("unsealed", forged_id)]


def _id_at(at: datetime) -> str:
    from gateway.integrity.sealer import id_floor

    return id_floor(at)[:10] + ids.new_id()[10:]


def test_exported_anchor_catches_a_rebuilt_chain(engine: sa.Engine) -> None:
    append_rows(engine, 3)
    cp = seal_once(engine).checkpoint
    assert cp is not None
    anchors = {cp.id: cp.hash}
    assert verify(engine, anchors=anchors).ok
    tamper(engine, "UPDATE decision_checkpoints SET hash = :h WHERE id = 1", h="f" * 64)
    report = verify(engine, anchors=anchors)
    assert {f.kind for f in report.findings} >= {"chain", "checkpoint"}


def test_update_and_delete_refused_on_postgresql(engine: sa.Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the append-only triggers are PostgreSQL's")
    victims = append_rows(engine, 2)
    seal_all(engine)
    for sql in (
        "UPDATE decisions SET probability = 0.5 WHERE id = :id",
        "DELETE FROM decisions WHERE id = :id",
        "UPDATE decision_seals SET record_hash = 'x' WHERE decision_id = :id",
        "DELETE FROM decision_seals WHERE decision_id = :id",
        "TRUNCATE decisions CASCADE",
        "UPDATE decision_checkpoints SET hash = 'x'",
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(sql), {"id": victims[0]})
    assert verify(engine).ok


def test_concurrent_writers_and_sealers_leave_no_gaps(engine: sa.Engine) -> None:
    errors: list[BaseException] = []

    def write(start: int) -> None:
        try:
            append_rows(engine, 40, start=start)
        except BaseException as exc:
            errors.append(exc)

    def seal() -> None:
        try:
            for _ in range(20):
                seal_once(engine, batch=7)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i * 100,)) for i in range(4)]
    threads += [threading.Thread(target=seal) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    seal_all(engine)
    report = verify(engine)
    assert report.ok, report.findings
    assert report.records == 160 and report.pending == 0


def test_cli_seal_verify_and_export(db_url: str, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from gateway import db
    from gateway.cli import main

    monkeypatch.setenv("LOANGATE_DATABASE__URL", db_url)
    monkeypatch.setenv("LOANGATE_INSTANCE", str(tmp_path))
    engine = db.make_engine(db_url)
    victims = append_rows(engine, 5)
    runner = CliRunner()
    ok = runner.invoke(main, ["decisions", "verify"])
    assert ok.exit_code == 0, ok.output
    assert '"records": 5' in ok.output
    export = tmp_path / "cp.jsonl"
    out = runner.invoke(main, ["decisions", "checkpoints", "--export", str(export)])
    assert out.exit_code == 0 and "exported 1 checkpoints" in out.output
    assert runner.invoke(main, ["decisions", "verify", "--anchors", str(export)]).exit_code == 0
    tamper(engine, "UPDATE decisions SET probability = 0.99 WHERE id = :id", id=victims[3])
    bad = runner.invoke(main, ["decisions", "verify"])
    assert bad.exit_code == 1 and victims[3] in bad.output
    engine.dispose()


def test_rows_older_than_the_window_before_the_first_seal_are_all_sealed(
    engine: sa.Engine,
) -> None:
    """Rows logged before tamper evidence existed (the migration) join the chain in turn."""
    log = DecisionLog(engine)
    start = datetime.now(UTC) - timedelta(days=3)
    for i in range(25):
        at = start + timedelta(minutes=i)
        log.append(synthetic_row(i, decision_id=_id_at(at), at=at))
    assert seal_all(engine, batch=10) == 25
    report = verify(engine)
    assert report.ok and report.records == 25 and report.checkpoints == 3


HOSTILE_TEXT = [
    "",
    "caf\u00e9 \u2013 \U0001f600",
    'quote " back \\ slash',
    "line\nbreak\ttab\x01",
    None,
]


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_database_and_python_record_hashes_agree(engine: sa.Engine, text: str | None) -> None:
    """PostgreSQL builds the record hash in SQL: byte for byte what Python builds."""
    from gateway.integrity.records import hash_of_row, hash_selected, selected_columns

    row = synthetic_row(7)
    row.update(application_id=text, idempotency_key=text, probability=None if text else -0.0)
    if text is None:
        row.update(model_version=None, model_name=None, policy_version=None)
    DecisionLog(engine).append(row)
    stmt = sa.select(*selected_columns(engine.dialect.name))
    with engine.connect() as conn:
        in_db = hash_selected(conn.execute(stmt).one())
        stored = conn.execute(sa.text("SELECT * FROM decisions")).mappings().one()
    assert in_db == hash_of_row(stored)
    seal_all(engine)
    assert verify(engine).ok


def test_deleted_head_checkpoint_leaves_its_seals_reported(engine: sa.Engine) -> None:
    ids_ = append_rows(engine, 3)
    seal_all(engine)
    tamper(engine, "DELETE FROM decision_checkpoints WHERE id = 1")
    findings = verify(engine).findings
    assert [(f.kind, f.decision_id) for f in findings] == [("seal", i) for i in ids_]


def test_verify_while_sealers_commit_reports_nothing_false(engine: sa.Engine) -> None:
    """Checkpoints committed during a verify are outside its view, never half-seen."""
    append_rows(engine, 30)
    stop = threading.Event()

    def keep_sealing() -> None:
        i = 100
        while not stop.is_set():
            append_rows(engine, 2, start=i)
            seal_once(engine, batch=3)
            i += 2

    sealer = threading.Thread(target=keep_sealing)
    sealer.start()
    try:
        reports = [verify(engine) for _ in range(5)]
    finally:
        stop.set()
        sealer.join()
    assert all(r.ok for r in reports), [r.findings[:3] for r in reports]
