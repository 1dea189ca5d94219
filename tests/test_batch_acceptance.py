"""Acceptance: a large EBCDIC fixed-width file, killed midway and resumed, logged once.

The acceptance size is 100,000 rows (``LOANGATE_BATCH_ROWS=100000``, documented in
docs/operations.md); ``make test`` runs the same test on 20,000 rows, in twenty chunks as well.

``loangate batch score`` runs as a real process on its own configuration path; the test
kills it (SIGKILL: no clean-up of any kind) once some chunks have committed and runs it
again. Every row ends with exactly one record, under its own key, and the output file
lists every row once with the decision logged for it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from gateway.batch.readers import file_sha256
from gateway.batch.runner import key_prefix
from tests.batch_files import COPYBOOK, write_fixed
from tests.conftest import make_db_url, register_demo_model

ROWS = int(os.environ.get("LOANGATE_BATCH_ROWS", "20000"))
CHUNK = ROWS // 20
LOANGATE = [sys.executable, "-c", "from gateway.cli import main; main()"]


def _count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("select count(*) from decisions")).scalar_one())


@pytest.mark.slow
def test_killed_run_resumes_and_logs_each_row_exactly_once(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, trained_model: Any
) -> None:
    url, _ = make_db_url("sqlite", tmp_path_factory)
    register_demo_model(url, tmp_path / "models", trained_model)
    data = tmp_path / "loans.dat"
    write_fixed(data, ROWS, seed=2026, encoding="cp037")
    assert data.stat().st_size == ROWS * 71
    output = tmp_path / "decisions.csv"
    env = {
        **os.environ,
        "LOANGATE_DATABASE__URL": url,
        "LOANGATE_MODELS__DIR": str(tmp_path / "models"),
        "LOANGATE_INSTANCE": str(tmp_path / "instance"),
    }
    args = [
        *LOANGATE,
        "batch",
        "score",
        str(data),
        "--pipeline",
        "credit-risk",
        "--copybook",
        str(COPYBOOK),
        "--encoding",
        "cp037",
        "--chunk-size",
        str(CHUNK),
        "--output",
        str(output),
        "--client-id",
        "mainframe-nightly",
    ]
    engine = sa.create_engine(url)
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        while first.poll() is None and _count(engine) < 2 * CHUNK:
            time.sleep(0.05)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    killed_at = _count(engine)
    assert first.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert 2 * CHUNK <= killed_at < ROWS
    assert killed_at % CHUNK == 0  # chunks commit whole or not at all
    assert not output.exists()

    second = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"{ROWS} rows: {ROWS - killed_at} decided, {killed_at} already logged" in second.stdout

    prefix = key_prefix(file_sha256(data))
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select idempotency_key, id, client_id, adapter from decisions order by id")
        ).all()
    engine.dispose()
    assert len(rows) == ROWS
    keys = {r[0]: r[1] for r in rows}
    assert len(keys) == ROWS  # distinct keys: no row logged twice
    assert set(keys) == {f"{prefix}{n}" for n in range(1, ROWS + 1)}  # one per row
    assert {r[2] for r in rows} == {"mainframe-nightly"} and {r[3] for r in rows} == {"batch"}

    out = pd.read_csv(output, usecols=["row_number", "decision_id", "status"])
    assert out["row_number"].tolist() == list(range(1, ROWS + 1))
    assert out["decision_id"].tolist() == [keys[f"{prefix}{n}"] for n in range(1, ROWS + 1)]
    assert (out["status"] == "decided").all()
