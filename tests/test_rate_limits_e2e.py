"""Rate limits under gunicorn: one budget per client across the workers of a server.

Two workers, a client allowed a burst of 5 and then one request every 1000 s: of 20
quick decision requests sent four at a time, exactly 5 are decided, whichever worker
answers; the 15 others get 429 with ``Retry-After`` and leave nothing in the log. Once
with the in-process store (the table in the instance folder), once with Redis.
"""

from __future__ import annotations

import json
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from gateway import db
from tests.conftest import bearer, make_db_url
from tests.helpers import body
from tests.servers import running_server, wait_for_workers

DECIDE = "/v1/pipelines/credit-risk/decisions"


@pytest.mark.e2e
@pytest.mark.parametrize("store", ["local", "redis"])
def test_limit_holds_across_workers(
    store: str,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    trained_model: Any,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    url, _ = make_db_url("sqlite", tmp_path_factory)
    monkeypatch.setenv("LOANGATE_RATE_LIMITS__ENABLED", "true")
    monkeypatch.setenv("LOANGATE_RATE_LIMITS__RATE_PER_SECOND", "0.001")
    monkeypatch.setenv("LOANGATE_RATE_LIMITS__BURST", "5")
    prefix = f"loangate-test:{uuid.uuid4().hex}:"
    if store == "redis":
        redis_url = request.getfixturevalue("redis_url")
        monkeypatch.setenv("LOANGATE_RATE_LIMITS__REDIS_URL", redis_url)
        monkeypatch.setenv("LOANGATE_RATE_LIMITS__KEY_PREFIX", json.dumps(prefix))  # YAML: quoted
    with running_server(url, tmp_path, trained_model, workers=2) as srv:
        wait_for_workers(srv, 2)  # both take requests from the first one on
        token = srv.token("decisions:create")

        def post(i: int) -> requests.Response:
            return requests.post(
                f"{srv.base}{DECIDE}", json=body(i % 10 + 1), headers=bearer(token), timeout=30
            )

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(post, range(20)))
        log = srv.log.read_text()
    statuses = [a.status_code for a in answers]
    assert statuses.count(201) == 5, statuses
    assert statuses.count(429) == 15, statuses
    for refused in (a for a in answers if a.status_code == 429):
        assert refused.json()["type"] == "/problems/rate-limited"
        assert int(refused.headers["Retry-After"]) >= 1
    engine = db.make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from decisions")).scalar_one() == 5
    engine.dispose()
    refusals = [json.loads(line) for line in log.splitlines() if '"event": "rate_limited"' in line]
    assert len(refusals) == 15
    assert len({r["pid"] for r in refusals}) == 2  # both workers refused: one shared budget
    assert token not in log
    if store == "redis":
        import redis

        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
        keys = list(client.scan_iter(f"{prefix}*"))
        assert len(keys) == 1 and re.fullmatch(rf"{re.escape(prefix)}\S+", keys[0].decode())
        client.delete(*keys)
    else:
        assert (tmp_path / "instance" / "rate-limits.bin").exists()
