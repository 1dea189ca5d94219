"""CRM write-back through a real gunicorn gateway while the CRM is down, then back.

The gateway runs with two workers, each with its own delivery thread (two processes on
one database), and the REST adapter configured as the CRM source. The stand-in CRM is
really stopped (its port closed) before the decisions are made and started again on
the same port later.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner

from gateway import db
from gateway.cli import main
from gateway.crm import outbox
from tests.conftest import bearer, register_demo_model
from tests.crm_standin import CLIENT_ID, CLIENT_SECRET, StandInCrm
from tests.helpers import body
from tests.servers import Server, start_server, stop_server

ID_ENV, SECRET_ENV = "CRM_TEST_CLIENT_ID", "CRM_TEST_CLIENT_SECRET"
RECORDS = [f"a0B5g00000Rec{i:03d}" for i in range(10)]
#: How long a test waits for something to happen in the background before failing.
PATIENCE_S = 90.0


def configure_env(
    monkeypatch: pytest.MonkeyPatch,
    crm: StandInCrm,
    breaker: dict[str, Any],
    delivery: dict[str, Any],
) -> None:
    """The gateway's CRM settings as ``LOANGATE_*`` overrides (inherited by gunicorn)."""
    monkeypatch.setenv(ID_ENV, CLIENT_ID)
    monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)
    connection = {
        "type": "rest",
        "base_url": crm.base_url,
        "auth": {
            "type": "oauth2-client-credentials",
            "token_url": crm.token_url,
            "client_id_env": ID_ENV,
            "client_secret_env": SECRET_ENV,
        },
        "timeout_ms": 1000,
        "retries": {"max_attempts": 1},
        "breaker": breaker,
    }
    monkeypatch.setenv("LOANGATE_CONNECTIONS__CRM", json.dumps(connection))
    monkeypatch.setenv("LOANGATE_CRM_WRITEBACK__CONNECTION", "crm")
    monkeypatch.setenv("LOANGATE_CRM_WRITEBACK__OBJECT", "Loan_Application__c")
    monkeypatch.setenv("LOANGATE_CRM_WRITEBACK__ADAPTERS", '["rest"]')
    monkeypatch.setenv("LOANGATE_CRM_WRITEBACK__DELIVERY", json.dumps(delivery))


def outbox_state(db_url: str) -> list[dict[str, Any]]:
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(outbox.outbox)).mappings()]
    finally:
        engine.dispose()


def wait_for(what: str, condition: Any, patience: float = PATIENCE_S) -> None:
    deadline = time.monotonic() + patience
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)


def decide_all(srv: Server) -> dict[str, str]:
    """One decision per record through the REST adapter: record id -> decision id."""
    token = srv.token("decisions:create")
    decided = {}
    for i, record in enumerate(RECORDS):
        resp = requests.post(
            f"{srv.base}/v1/pipelines/credit-risk/decisions",
            json=body(i, application_id=record),
            headers=bearer(token),
            timeout=30,
        )
        assert resp.status_code == 201, resp.text  # answered while the CRM is down
        decided[record] = resp.json()["decision_id"]
    return decided


def outage(
    db_url: str,
    tmp_path: Path,
    trained: Any,
    monkeypatch: pytest.MonkeyPatch,
    outage_s: float,
    breaker: dict[str, Any],
    delivery: dict[str, Any],
) -> None:
    crm = StandInCrm()
    crm.start()
    crm.stop()  # down from the start: the port is closed
    configure_env(monkeypatch, crm, breaker, delivery)
    register_demo_model(db_url, tmp_path / "models", trained)
    srv = start_server(db_url, tmp_path, workers=2)
    try:
        down_since = time.monotonic()
        decided = decide_all(srv)
        rows = outbox_state(db_url)
        assert {r["decision_id"] for r in rows} == set(decided.values())
        wait_for(
            "three failed attempts of every write-back",
            lambda: all(r["attempts"] >= 3 for r in outbox_state(db_url)),
        )
        time.sleep(max(0.0, outage_s - (time.monotonic() - down_since)))
        rows = outbox_state(db_url)
        assert all(r["status"] == "pending" for r in rows)
        assert {r["last_error"] for r in rows} <= {"unavailable: ConnectionError", "circuit-open"}
        assert not crm.patches

        crm.start()  # back, on the same port
        wait_for(
            "every write-back delivered",
            lambda: all(r["status"] == "delivered" for r in outbox_state(db_url)),
        )
        time.sleep(1.0)  # several more delivery ticks of both workers
        assert dict(crm.patches) == dict.fromkeys(RECORDS, 1)
        for record, decision_id in decided.items():
            assert crm.bodies[record][0]["Decision_Id__c"] == decision_id
        log = srv.log.read_text()
        assert CLIENT_SECRET not in log and "tok-" not in log
    finally:
        stop_server(srv)
        crm.stop()


@pytest.mark.e2e
def test_writebacks_made_during_an_outage_are_each_delivered_once_after_it(
    db_url: str, tmp_path: Path, trained_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The short variant: the CRM is down for at least 5 s and until every write-back
    failed three times (backoff 0.2 s doubling to a 1 s cap, polled every 0.2 s by each
    of the two workers), then comes back."""
    outage(
        db_url,
        tmp_path,
        trained_model,
        monkeypatch,
        outage_s=5.0,
        breaker={"failure_threshold": 1000},
        delivery={
            "interval_seconds": 0.2,
            "backoff_seconds": 0.2,
            "max_backoff_seconds": 1.0,
            "lease_seconds": 10,
        },
    )


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # the production database
def test_a_minute_long_outage_delays_but_never_drops_a_writeback(
    db_url: str, tmp_path: Path, trained_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The acceptance run: the CRM is down for a full minute
    (``LOANGATE_CRM_OUTAGE_SECONDS=60 .venv/bin/pytest -m slow tests/test_crm_writeback_e2e.py``;
    the default run keeps it down 10 s). Backoff 1 s doubling to an 8 s cap gives each
    write-back several failed attempts; each worker's circuit breaker opens after 5
    failures and lets a probe through every 2 s."""
    outage(
        db_url,
        tmp_path,
        trained_model,
        monkeypatch,
        outage_s=float(os.environ.get("LOANGATE_CRM_OUTAGE_SECONDS", "10")),
        breaker={"failure_threshold": 5, "open_seconds": 2},
        delivery={
            "interval_seconds": 0.5,
            "backoff_seconds": 1.0,
            "max_backoff_seconds": 8.0,
            "lease_seconds": 10,
        },
    )


@pytest.mark.e2e
def test_writebacks_outlive_a_killed_server_and_are_delivered_by_the_cli(
    db_url: str, tmp_path: Path, trained_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decisions committed, the CRM down, every server process killed (SIGKILL): the
    outbox rows stay, and ``loangate crm deliver --once`` delivers each once later."""
    crm = StandInCrm()
    crm.start()
    crm.stop()
    configure_env(
        monkeypatch,
        crm,
        {"failure_threshold": 1000},
        {
            "interval_seconds": 0.2,
            "backoff_seconds": 0.2,
            "max_backoff_seconds": 1.0,
            "lease_seconds": 5,
        },
    )
    register_demo_model(db_url, tmp_path / "models", trained_model)
    srv = start_server(db_url, tmp_path, workers=2)
    try:
        decided = decide_all(srv)
    finally:
        srv.kill()
    assert {r["status"] for r in outbox_state(db_url)} == {"pending"}
    crm.start()
    runner = CliRunner()
    env = {"LOANGATE_DATABASE__URL": db_url, "LOANGATE_INSTANCE": str(tmp_path / "instance")}
    try:

        def deliver_once() -> bool:
            out = runner.invoke(main, ["crm", "deliver", "--once"], env=env)
            assert out.exit_code == 0, out.output
            return all(r["status"] == "delivered" for r in outbox_state(db_url))

        wait_for("the CLI to deliver everything", deliver_once, patience=30)
        assert dict(crm.patches) == dict.fromkeys(RECORDS, 1)
        assert sorted(b[0]["Decision_Id__c"] for b in crm.bodies.values()) == sorted(
            decided.values()
        )
        out = runner.invoke(main, ["crm", "outbox", "--json"], env=env)
        assert out.exit_code == 0, out.output
        assert json.loads(out.output)["counts"] == {
            "pending": 0,
            "delivered": len(RECORDS),
            "failed": 0,
            "superseded": 0,
        }
    finally:
        crm.stop()
