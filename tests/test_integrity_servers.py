"""Two gateway servers (2 workers each) writing to one PostgreSQL under load, each worker
sealing in the background: afterwards the chain verifies, with no gaps.

Runs ``LOANGATE_SOAK_SECONDS`` of load (default 6); the acceptance run is 60 s:
``LOANGATE_SOAK_SECONDS=60 .venv/bin/pytest -m slow tests/test_integrity_servers.py``.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from gateway import db
from gateway.integrity.sealer import seal_all
from gateway.integrity.verify import verify
from tests.conftest import register_demo_model
from tests.helpers import body
from tests.servers import start_server, stop_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SECONDS = float(os.environ.get("LOANGATE_SOAK_SECONDS", "6"))
CLIENTS = 8


def test_two_servers_under_load_verify_with_no_gaps(
    db_url: str, tmp_path: Path, trained_model: Any
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several hosts share one PostgreSQL")
    register_demo_model(db_url, tmp_path / "models", trained_model)
    servers = [start_server(db_url, tmp_path, workers=2)]
    try:
        servers.append(start_server(db_url, tmp_path, workers=2))  # same keys and models
        token = servers[0].token("decisions:create")
        answered: list[str] = []
        failures: list[str] = []
        stop_at = time.monotonic() + SECONDS
        counter = itertools.count()

        def client(k: int) -> None:
            session = requests.Session()
            base = servers[k % 2].base
            headers = {"Authorization": f"Bearer {token}"}
            while time.monotonic() < stop_at:
                i = next(counter)
                resp = session.post(
                    f"{base}/v1/pipelines/credit-risk/decisions",
                    json=body(i % 20 + 1, application_id=f"LN-{i}"),
                    headers=headers,
                    timeout=30,
                )
                if resp.status_code == 201:
                    answered.append(resp.json()["decision_id"])
                else:
                    failures.append(f"{resp.status_code} {resp.text[:200]}")

        threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for srv in servers:
            stop_server(srv)
    assert not failures, failures[:3]
    assert len(answered) > CLIENTS
    engine = db.make_engine(db_url)
    try:
        seal_all(engine)  # what the servers' sealers had not reached before they stopped
        report = verify(engine)
        assert report.ok, report.findings[:5]
        assert report.pending == 0
        with engine.connect() as conn:
            sealed = set(conn.execute(sa.text("SELECT decision_id FROM decision_seals")).scalars())
            seqs = conn.execute(
                sa.text("SELECT min(seq), max(seq), count(*) FROM decision_seals")
            ).one()
        assert set(answered) <= sealed
        assert tuple(seqs) == (1, len(sealed), len(sealed))  # no gaps
        assert report.records == len(sealed) and report.checkpoints >= 1
    finally:
        engine.dispose()
