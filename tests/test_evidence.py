"""Evidence bundles: built from the log, checked offline; any changed byte fails."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.integrity.evidence import build_bundle, check_bundle
from gateway.integrity.sealer import seal_all
from gateway.tables import ModelVersion
from tests.conftest import bearer
from tests.helpers import body
from tests.integrity_helpers import append_rows, synthetic_row

CHANGED_BYTE = st.integers(1, 255)


def _bundle_of_synthetic(tmp_path: Path) -> bytes:
    """A bundle from a fresh SQLite log of synthetic rows (the proof has several levels)."""
    from gateway import db

    engine = db.make_engine(f"sqlite:///{tmp_path / 'ev.db'}")
    db.upgrade(engine)
    with engine.begin() as conn:  # the model version the synthetic rows name
        conn.execute(
            sa.insert(ModelVersion),
            {
                "name": "german-credit",
                "version": 1,
                "kind": "logistic",
                "stage": "champion",
                "artifact_path": "german-credit/1/model.skops",
                "sha256": "ab" * 32,
                "metadata_json": '{"auc": 0.79}',
                "created_at": datetime.now(UTC),
                "created_by": "tests",
            },
        )
    ids = append_rows(engine, 11)
    seal_all(engine)
    bundle = build_bundle(engine, ids[6])
    engine.dispose()
    assert bundle is not None
    return orjson.dumps(bundle)


@pytest.fixture(scope="module")
def bundle_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _bundle_of_synthetic(tmp_path_factory.mktemp("ev"))


def test_untouched_bundle_verifies(bundle_bytes: bytes) -> None:
    assert check_bundle(bundle_bytes) == []
    bundle = orjson.loads(bundle_bytes)
    assert len(bundle["inclusion_proof"]["path"]) == 4  # 11 leaves, leaf 6
    assert check_bundle(bundle_bytes, anchors={bundle["checkpoint"]["hash"]}) == []
    assert check_bundle(bundle_bytes, anchors={"0" * 64}) != []


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_single_byte_change_of_the_record_fails(
    bundle_bytes: bytes, data: st.DataObject
) -> None:
    start = bundle_bytes.index(b'"record":')
    end = bundle_bytes.index(b',"seal":')
    pos = data.draw(st.integers(start, end - 1), label="position")
    delta = data.draw(CHANGED_BYTE, label="delta")
    changed = bytearray(bundle_bytes)
    changed[pos] = (changed[pos] + delta) % 256
    assert check_bundle(bytes(changed)) != []


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_single_byte_change_anywhere_fails_or_keeps_the_meaning(
    bundle_bytes: bytes, data: st.DataObject
) -> None:
    """Outside the record, a change either fails or is one the evidence does not rest on
    (e.g. the model's free-form metadata)."""
    pos = data.draw(st.integers(0, len(bundle_bytes) - 1), label="position")
    changed = bytearray(bundle_bytes)
    changed[pos] = (changed[pos] + data.draw(CHANGED_BYTE)) % 256
    if check_bundle(bytes(changed)) == []:
        before, after = orjson.loads(bundle_bytes), orjson.loads(bytes(changed))
        for key in ("record", "seal", "inclusion_proof", "checkpoint"):
            assert before[key] == after[key]


def test_bundle_over_the_api_verifies_offline_with_the_cli(
    app: Flask, client: FlaskClient, get_token: Callable[..., str], tmp_path: Path
) -> None:
    scorer, auditor = get_token("decisions:create"), get_token("decisions:read")
    made = client.post("/v1/pipelines/credit-risk/decisions", json=body(), headers=bearer(scorer))
    assert made.status_code == 201
    decision_id = made.get_json()["decision_id"]
    url = f"/v1/decisions/{decision_id}/evidence"
    early = client.get(url, headers=bearer(auditor))
    assert early.status_code == 409 and early.headers["Retry-After"]
    engine: sa.Engine = app.extensions["loangate"].engine
    seal_all(engine)
    assert client.get(url, headers=bearer(scorer)).status_code == 403
    resp = client.get(url, headers=bearer(auditor))
    assert resp.status_code == 200
    bundle = resp.get_json()
    assert bundle["model"]["sha256"] == bundle["record"]["columns"]["model_sha256"]
    assert bundle["policy"]["version"] == bundle["record"]["columns"]["policy_version"]
    path = tmp_path / "evidence.json"
    path.write_bytes(resp.data)
    from gateway.cli import main

    ok = CliRunner().invoke(main, ["decisions", "verify", "--bundle", str(path)])
    assert ok.exit_code == 0, ok.output
    tampered = resp.data.replace(b'"probability":', b'"probability":1', 1)
    path.write_bytes(tampered)
    bad = CliRunner().invoke(main, ["decisions", "verify", "--bundle", str(path)])
    assert bad.exit_code == 1
    integrity = client.get("/v1/integrity", headers=bearer(auditor)).get_json()
    assert integrity["ok"] is True and integrity["records"] == 1
    assert (
        client.get(
            "/v1/decisions/00000000000000000000000000/evidence", headers=bearer(auditor)
        ).status_code
        == 404
    )


def test_api_verify_names_an_altered_record(
    app: Flask, client: FlaskClient, get_token: Callable[..., str]
) -> None:
    engine: sa.Engine = app.extensions["loangate"].engine
    from gateway.decision_log import DecisionLog
    from tests.integrity_helpers import tamper

    row = synthetic_row(1)
    DecisionLog(engine).append(row)
    seal_all(engine)
    tamper(engine, "UPDATE decisions SET probability = 0.2 WHERE id = :id", id=row["id"])
    report = client.get("/v1/integrity", headers=bearer(get_token("decisions:read"))).get_json()
    assert report["ok"] is False
    assert report["first_problem"]["decision_id"] == row["id"]
    assert report["first_problem"]["kind"] == "altered"
