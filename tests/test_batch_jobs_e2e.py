"""Batch jobs under gunicorn: any worker answers, a killed server's job resumes on restart."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from gateway import db
from tests.batch_files import write_fixed
from tests.conftest import register_demo_model
from tests.servers import Server, start_server, stop_server

pytestmark = pytest.mark.e2e

ROWS = 4000


@pytest.fixture
def servers(
    db_url: str, tmp_path: Path, trained_model: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[Server]]:
    """Started servers (stopped at the end); small chunks and a short lease."""
    monkeypatch.setenv("LOANGATE_BATCH__CHUNK_SIZE", "25")
    monkeypatch.setenv("LOANGATE_BATCH__LEASE_SECONDS", "2")
    register_demo_model(db_url, tmp_path / "models", trained_model)
    started: list[Server] = []
    yield started
    for srv in started:
        stop_server(srv)


def status(srv: Server, token: str, location: str) -> dict[str, Any]:
    # a new connection per poll: gunicorn hands each to whichever worker accepts it
    resp = requests.get(
        srv.base + location,
        headers={"Authorization": f"Bearer {token}", "Connection": "close"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_a_job_survives_its_server_being_killed(
    servers: list[Server], db_url: str, tmp_path: Path
) -> None:
    srv = start_server(db_url, tmp_path)
    servers.append(srv)
    token = srv.token("batches:create")
    data = tmp_path / "loans.dat"
    write_fixed(data, ROWS, seed=9)
    resp = requests.post(
        f"{srv.base}/v1/pipelines/credit-risk/batches?copybook=german-credit",
        data=data.read_bytes(),  # 284 KB: over the 64 KB decision cap, under the upload cap
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"},
        timeout=60,
    )
    assert resp.status_code == 202, resp.text
    location = resp.headers["Location"]
    deadline = time.monotonic() + 300
    seen = status(srv, token, location)
    while seen["rows_done"] == 0 and seen["status"] != "done" and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = status(srv, token, location)
    killed_midway = seen["status"] == "running"
    srv.kill()  # SIGKILL master and workers: the job's thread dies mid-file

    again = start_server(db_url, tmp_path)
    servers.append(again)
    while seen["status"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = status(again, token, location)
    assert seen["status"] == "done", seen
    assert (seen["rows_total"], seen["rows_done"]) == (ROWS, ROWS)
    if killed_midway:
        assert seen["attempts"] >= 2  # taken over after the lease ran out
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        keys = conn.execute(
            sa.text("select count(*), count(distinct idempotency_key) from decisions")
        ).one()
    engine.dispose()
    assert tuple(keys) == (ROWS, ROWS)  # one record per row: none lost, none twice
    out = requests.get(
        again.base + seen["links"]["output"],
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert out.status_code == 200
    lines = list(csv.DictReader(io.StringIO(out.text)))
    assert len(lines) == ROWS
    assert len({row["decision_id"] for row in lines}) == ROWS
