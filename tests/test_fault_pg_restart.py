"""PostgreSQL stopped and restarted under load: 503s while it is down, full recovery after,
and no answered decision missing.

A private cluster (:mod:`tests.pg_cluster`, never the shared one) backs a real gunicorn
gateway (2 workers). Client threads post decisions with unique Idempotency-Keys throughout;
mid-load the cluster is stopped with ``pg_ctl stop -m fast``, held down, and started again;
then once more while the gateway is idle, so that every connection a worker kept is dead.
Run alone with ``.venv/bin/pytest -m fault -s`` (``-s`` prints the observed timings).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner

from gateway import db
from gateway.cli import main as cli
from gateway.log_writer import RowWriter
from tests.conftest import IN_CI, register_demo_model
from tests.helpers import body
from tests.pg_cluster import PrivateCluster, create_cluster, unavailable_reason
from tests.servers import Server, start_server, stop_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.fault]

CLIENTS = 4
CLIENT_TIMEOUT = 10.0  # seconds; a request that hangs longer fails the test
DOWN_SECONDS = 4.0
RECOVERY_BOUND = 10.0  # seconds from the restarted cluster accepting connections
RETRIED = 30  # 503'd requests sent again with their key after the recovery
PATH = "/v1/pipelines/credit-risk/decisions"


@dataclass
class Sent:
    """One request a client thread sent, and what came back."""

    key: str
    index: int  # which applicant, and the application id: the same body when sent again
    started: float
    ended: float
    status: int | None = None  # None: no HTTP answer (see ``error``)
    decision_id: str | None = None
    retry_after: str | None = None
    content_type: str = ""
    problem_type: str = ""
    error: str = ""


@pytest.fixture
def private_pg() -> Iterator[PrivateCluster]:
    """A started throwaway cluster, destroyed afterwards."""
    reason = unavailable_reason()
    if reason:
        if IN_CI:
            pytest.fail(f"the PostgreSQL fault test needs initdb: {reason}")
        pytest.skip(reason)
    cluster = create_cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


def post(session: requests.Session, srv: Server, token: str, key: str, i: int) -> Sent:
    """Send one decision request with idempotency key ``key``; never raises."""
    payload = body(i % 20 + 1, application_id=f"PG-{i}")
    sent = Sent(key, i, time.monotonic(), 0.0)
    try:
        resp = session.post(
            f"{srv.base}{PATH}",
            json=payload,
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
            timeout=CLIENT_TIMEOUT,
        )
    except requests.RequestException as exc:  # reset, refused or timed out
        sent.error = f"{type(exc).__name__}: {exc}"
    else:
        sent.status = resp.status_code
        sent.content_type = resp.headers.get("Content-Type", "")
        sent.retry_after = resp.headers.get("Retry-After")
        doc = resp.json() if resp.content else {}
        sent.decision_id = doc.get("decision_id")
        sent.problem_type = str(doc.get("type", ""))
    sent.ended = time.monotonic()
    return sent


def test_postgresql_restart_under_load(
    private_pg: PrivateCluster,
    tmp_path: Path,
    trained_model: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = private_pg.url
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    register_demo_model(url, tmp_path / "models", trained_model)
    srv = start_server(url, tmp_path, workers=2)
    sent: list[Sent] = []
    probes: list[tuple[float, float, int | None]] = []  # (started, ended, /readyz status)
    stop = threading.Event()
    counter = itertools.count()
    try:
        token = srv.token("decisions:create")

        def client() -> None:
            session = requests.Session()
            while not stop.is_set():
                i = next(counter)
                result = post(session, srv, token, f"pg-restart-{i}", i)
                sent.append(result)
                if result.status != 201:
                    time.sleep(0.05)  # keep the outage's 503s from flooding the record

        def prober() -> None:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    status: int | None = requests.get(f"{srv.base}/readyz", timeout=5).status_code
                except requests.RequestException:
                    status = None
                probes.append((started, time.monotonic(), status))
                time.sleep(0.2)

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        threads.append(threading.Thread(target=prober))
        for t in threads:
            t.start()
        try:
            time.sleep(2.0)  # load before the outage
            stop_called = time.monotonic()
            private_pg.stop("fast")
            down = time.monotonic()  # the server has exited: every connection is gone
            time.sleep(DOWN_SECONDS)
            start_called = time.monotonic()
            private_pg.start()
            up = time.monotonic()  # accepting connections again
            deadline = up + RECOVERY_BOUND
            while time.monotonic() < deadline and not any(
                s.status == 201 and s.started >= up for s in list(sent)
            ):
                time.sleep(0.1)
            time.sleep(3.0)  # load after the recovery
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=CLIENT_TIMEOUT + 5)

        # A 503'd request retried with its key is decided once: if its record was committed
        # just before the connection was cut, that record is the answer.
        retried: dict[str, str | None] = {}
        session = requests.Session()
        for s in [s for s in sent if s.status == 503][:RETRIED]:
            again = post(session, srv, token, s.key, s.index)
            assert again.status == 201, (again.status, again.error)
            retried[s.key] = again.decision_id

        # A restart while the gateway is idle: every connection a worker kept from before is
        # dead, and the first decisions after it must not pay for that.
        private_pg.stop("fast")
        private_pg.start()
        idle_restart: list[Sent] = []

        def after_idle_restart(k: int) -> None:
            session = requests.Session()
            for j in range(10):
                i = next(counter)
                idle_restart.append(post(session, srv, token, f"pg-idle-{k}-{j}", i))

        pair = [threading.Thread(target=after_idle_restart, args=(k,)) for k in range(2)]
        for t in pair:
            t.start()
        for t in pair:
            t.join()
    finally:
        stop_server(srv)

    # No hang, reset or refused connection: every request got an HTTP answer in time.
    assert not [s.error for s in sent if s.error], [s.error for s in sent if s.error][:3]
    assert {s.status for s in sent} <= {201, 503}, {s.status for s in sent}
    before = [s for s in sent if s.ended < stop_called]
    assert before and all(s.status == 201 for s in before)

    # While down: every request is a retryable problem+json 503, and readiness says so.
    unavailable = [s for s in sent if s.status == 503]
    for s in unavailable:
        assert s.content_type.startswith("application/problem+json"), s.content_type
        assert s.problem_type.endswith("log-unavailable"), s.problem_type
        assert s.retry_after is not None and int(s.retry_after) > 0
    during = [s for s in sent if s.started > down and s.ended < start_called]
    assert during, "no request was answered while the database was down"
    assert all(s.status == 503 for s in during)
    probes_down = [p for p in probes if p[0] > down and p[1] < start_called]
    assert probes_down and all(p[2] == 503 for p in probes_down), probes_down

    # After the restart: the pools recover; nothing sent once it accepts connections fails.
    after = [s for s in sent if s.started >= up]
    assert after, "no request was sent after the restart"
    assert all(s.status == 201 for s in after), [(s.status, s.problem_type) for s in after][:5]
    recovered = min(s.ended for s in after) - up
    assert recovered < RECOVERY_BOUND
    assert [p[2] for p in probes if p[0] >= up][-1:] == [200]

    assert [(s.status, s.problem_type, s.error) for s in idle_restart if s.status != 201] == []
    sent.extend(idle_restart)

    # No answered decision is missing from the log; nothing was logged that was not sent.
    answered = {s.key: s.decision_id for s in sent if s.status == 201}
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT idempotency_key, id FROM decisions")).all()
    finally:
        engine.dispose()
    logged: dict[str, str] = {row[0]: row[1] for row in rows}
    missing = {k: v for k, v in answered.items() if logged.get(k) != v}
    assert not missing, list(missing.items())[:5]
    assert set(logged) <= {s.key for s in sent}
    assert retried and all(logged.get(k) == v for k, v in retried.items())

    # The tamper-evident chain holds every record, the retried ones included.
    monkeypatch.setenv("LOANGATE_DATABASE__URL", url)
    monkeypatch.setenv("LOANGATE_MODELS__DIR", str(tmp_path / "models"))
    monkeypatch.setenv("LOANGATE_INSTANCE", str(tmp_path / "instance"))
    verified = CliRunner().invoke(cli, ["decisions", "verify"], catch_exceptions=False)
    assert verified.exit_code == 0, verified.output

    first_503 = min((s.started for s in unavailable), default=down) - stop_called
    last_503 = max((s.ended for s in unavailable), default=up) - up
    print(
        "\nPG_RESTART "
        + json.dumps(
            {
                "requests": len(sent),
                "answered_201": len(answered),
                "answered_503": len(unavailable),
                "stop_seconds": round(down - stop_called, 2),
                "held_down_seconds": round(start_called - down, 2),
                "start_seconds": round(up - start_called, 2),
                "first_503_after_stop_called": round(first_503, 2),
                "last_503_after_up": round(last_503, 2),
                "first_201_after_up": round(recovered, 2),
                "span_of_503s_seconds": round(last_503 + up - first_503 - stop_called, 2),
            }
        )
    )


def test_kept_write_connection_survives_an_idle_restart(private_pg: PrivateCluster) -> None:
    """The decision log's writer keeps its connection between writes; after the database
    restarts while it is idle, the next write takes a fresh connection instead of failing."""
    engine = db.make_engine(private_pg.url)
    table = sa.Table("kept", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    try:
        table.create(engine)
        writer = RowWriter(engine, keep=True)
        writer.write([(table, [{"id": 1}])])
        private_pg.stop("fast")
        private_pg.start()
        writer.write([(table, [{"id": 2}])])
        writer.close()
        with engine.connect() as conn:
            ids = conn.execute(sa.select(table.c.id).order_by(table.c.id)).scalars()
            assert list(ids) == [1, 2]
    finally:
        engine.dispose()
