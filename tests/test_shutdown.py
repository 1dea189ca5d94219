"""Graceful stop: background work flushed in process; under gunicorn, SIGTERM lets the
requests in flight finish, logged, and the master exit 0 within the graceful timeout.

The requests are held in flight deterministically: the pipeline looks each applicant up
in a stand-in core-banking service (tests/soap_standin.py) that holds every call until
the test releases it, so the test knows each worker is inside a request when it sends
SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Flask

from gateway import create_app, db, hookimpl
from gateway.integrity.background import start_sealer
from gateway.model_switch import start_model_refresh
from gateway.shutdown import stop_background
from tests.conftest import bearer, gateway_overrides, make_db_url, register_demo_model
from tests.helpers import body
from tests.servers import start_server, stop_server, wait_for_workers
from tests.soap_standin import CoreBankingStandIn, serve
from tests.test_outbound_soap import PIPELINE, SECRET, commented_example


class SlowRecorder:
    """Records ``decision_logged`` events; each waits for ``gate`` first."""

    def __init__(self) -> None:
        self.records: list[str] = []
        self.gate = threading.Event()

    @hookimpl
    def decision_logged(self, record: dict[str, Any]) -> None:
        self.gate.wait(10)
        self.records.append(record["decision_id"])


def test_stop_background_flushes_events_and_stops_threads(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, trained_model: Any
) -> None:
    url, _ = make_db_url("sqlite", tmp_path_factory)
    register_demo_model(url, tmp_path / "models", trained_model)
    recorder = SlowRecorder()
    app: Flask = create_app(
        gateway_overrides(url, tmp_path / "models"),
        plugins=[recorder],
        instance_path=tmp_path / "instance",
    )
    sealer, refresh = start_sealer(app), start_model_refresh(app)
    assert sealer is not None
    token = app.extensions["loangate"].extras["auth"].mint_token("c", ["decisions:create"])
    client = app.test_client()
    ids = []
    for i in range(3):
        resp = client.post(
            "/v1/pipelines/credit-risk/decisions", json=body(i), headers=bearer(token)
        )
        assert resp.status_code == 201
        ids.append(resp.get_json()["decision_id"])
    threading.Timer(0.2, recorder.gate.set).start()  # the hooks are still busy when it stops
    done = stop_background(app, budget_seconds=10)
    assert recorder.records == ids  # every queued event delivered before the stop returned
    assert done["events_pending"] == 0
    assert done["sealer"] == done["model_refresh"] == "stopped"
    assert not sealer.is_alive() and not refresh.is_alive()
    assert done["shadows_flushed"] is True
    assert done["sealed"] == 3  # this process's latest decisions, sealed on the way out
    engine = db.make_engine(url)
    with engine.connect() as conn:
        sealed = conn.execute(sa.text("select decision_id from decision_seals")).scalars()
        assert set(sealed) == set(ids)
    engine.dispose()


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _configure(monkeypatch: pytest.MonkeyPatch, address: str, graceful: int) -> None:
    """The core-banking example of config/gateway.yaml, with a lookup that may wait long."""
    connections, pipeline = commented_example()
    connection = {
        **connections["core-banking"],
        "address": address,
        "timeout_ms": 30000,
        "retries": {"max_attempts": 1},
    }
    lookup = next(e for e in pipeline["enrichers"] if e["name"] == "soap-lookup")
    lookup["config"]["budget_ms"] = 30000
    monkeypatch.setenv("LOANGATE_CORE_BANKING_PASSWORD", SECRET)
    monkeypatch.setenv("LOANGATE_CONNECTIONS__CORE-BANKING", json.dumps(connection))
    monkeypatch.setenv(f"LOANGATE_PIPELINES__{PIPELINE.upper()}", json.dumps(pipeline))
    monkeypatch.setenv("LOANGATE_SERVER__GRACEFUL_TIMEOUT_SECONDS", str(graceful))


@pytest.mark.e2e
def test_sigterm_finishes_requests_in_flight_then_exits_0(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    trained_model: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workers, graceful = 3, 20
    url, _ = make_db_url("sqlite", tmp_path_factory)
    standin = CoreBankingStandIn(mode="slow", slow_seconds=60)
    standin.basic = ("loangate", SECRET)
    with serve(standin) as address:
        _configure(monkeypatch, address, graceful)
        register_demo_model(url, tmp_path / "models", trained_model)
        srv = start_server(url, tmp_path, workers=workers)
        try:
            wait_for_workers(srv, workers)
            token = srv.token("decisions:create")
            decide = f"{srv.base}/v1/pipelines/{PIPELINE}/decisions"

            def post(i: int) -> requests.Response:
                payload = body(i, customer_id=f"C-{100 + i}", application_id=f"LN-{i}")
                return requests.post(decide, json=payload, headers=bearer(token), timeout=60)

            with ThreadPoolExecutor(workers + 1) as pool:
                in_flight = [pool.submit(post, i) for i in range(workers)]
                # Each worker is inside a request once the stand-in holds its lookup.
                wait_for("every worker inside a request", lambda: standin.calls == workers)
                os.kill(srv.proc.pid, signal.SIGTERM)  # to the master, as an orchestrator does
                stopped_at = time.monotonic()
                time.sleep(0.5)  # the master closes its socket and signals the workers
                late = pool.submit(requests.get, f"{srv.base}/healthz", timeout=30)
                time.sleep(0.5)  # the requests stay held a while after SIGTERM
                assert all(not f.done() for f in in_flight), "answered before the release"
                standin.release.set()
                answers = [f.result(timeout=60) for f in in_flight]
                assert srv.proc.wait(timeout=graceful) == 0
                took = time.monotonic() - stopped_at
                assert took < graceful, f"the master took {took:.1f} s to exit"
                with pytest.raises(requests.ConnectionError):
                    late.result(timeout=30)  # queued after SIGTERM: never served
        finally:
            stop_server(srv)
    assert [a.status_code for a in answers] == [201] * workers, [a.text for a in answers]
    ids = {a.json()["decision_id"] for a in answers}
    assert all(a.json()["outcome"] in ("approve", "refer", "decline") for a in answers)
    with pytest.raises(requests.ConnectionError):  # nothing listens any more
        requests.get(f"{srv.base}/healthz", timeout=5)
    engine = db.make_engine(url)
    with engine.connect() as conn:
        logged = set(conn.execute(sa.text("select id from decisions")).scalars())
    engine.dispose()
    assert logged == ids  # every answered decision logged; nothing else
    log = srv.log.read_text()
    assert log.count('"event": "worker_stopped"') == workers, log[-3000:]
    assert SECRET not in log and token not in log
    assert standin.calls == workers
