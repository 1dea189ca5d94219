"""The REST decision path, end to end inside the app, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import bearer
from tests.helpers import applicants, body

URL = "/v1/pipelines/credit-risk/decisions"


@pytest.fixture
def scorer_token(get_token: Callable[..., str]) -> str:
    return get_token("decisions:create")


@pytest.fixture
def auditor_token(get_token: Callable[..., str]) -> str:
    return get_token("decisions:read")


def decide(client: FlaskClient, token: str, payload: Any, **headers: str) -> Any:
    return client.post(URL, json=payload, headers={**bearer(token), **headers})


def count_rows(app: Flask) -> int:
    with app.extensions["loangate"].engine.connect() as conn:
        return int(conn.execute(sa.text("select count(*) from decisions")).scalar_one())


def test_decision_is_explained_and_logged(
    app: Flask, client: FlaskClient, scorer_token: str, auditor_token: str
) -> None:
    resp = decide(client, scorer_token, body(1))
    assert resp.status_code == 201, resp.get_json()
    doc = resp.get_json()
    assert doc["outcome"] in {"approve", "refer", "decline"}
    p = doc["probability_of_default"]
    assert 0 < p < 1
    assert doc["model"]["name"] == "german-credit" and doc["model"]["version"] == 1
    explanation = doc["explanation"]
    logit = math.log(p / (1 - p))
    assert (
        abs(explanation["base_value"] + sum(explanation["contributions"].values()) - logit) < 1e-6
    )
    assert "personal_status_and_sex" not in explanation["contributions"]
    assert "foreign_worker" not in explanation["contributions"]
    assert set(doc["timings_ms"]) == {
        "validator:schema",
        "enricher:derived",
        "scorer:sklearn",
        "explainer:linear",
        "policy:threshold",
    }
    assert resp.headers["Location"] == f"/v1/decisions/{doc['decision_id']}"
    assert "application" not in doc  # the caller is not sent its own inputs back

    stored = client.get(doc["links"]["self"], headers=bearer(auditor_token))
    assert stored.status_code == 200
    record = stored.get_json()
    assert record["probability_of_default"] == p
    assert record["application"]["credit_amount"] == body(1)["applicant"]["credit_amount"]
    assert record["features"]["credit_per_month"] == pytest.approx(5951 / 48)
    assert record["client_id"] and record["adapter"] == "rest"


def test_declined_applicant_gets_reason_codes(client: FlaskClient, scorer_token: str) -> None:
    outcomes: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(applicants()[:60]):
        doc = decide(client, scorer_token, {"applicant": row, "application_id": f"A{i}"}).get_json()
        outcomes.setdefault(doc["outcome"], doc)
    assert {"approve", "decline"} <= set(outcomes)
    declined = outcomes["decline"]
    assert 1 <= len(declined["reason_codes"]) <= 4
    contributions = [r["contribution"] for r in declined["reason_codes"]]
    assert contributions == sorted(contributions, reverse=True) and min(contributions) > 0
    assert all(r["code"].startswith("R") and r["text"] for r in declined["reason_codes"])
    assert outcomes["approve"]["reason_codes"] == []


def test_missing_required_field_is_422_and_logged(
    app: Flask, client: FlaskClient, scorer_token: str, auditor_token: str
) -> None:
    resp = decide(client, scorer_token, body(1, credit_amount=...))
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"
    problem = resp.get_json()
    assert problem["errors"] == [
        {"pointer": "/applicant/credit_amount", "code": "required", "detail": "is required"}
    ]
    record = client.get(f"/v1/decisions/{problem['decision_id']}", headers=bearer(auditor_token))
    assert record.status_code == 200
    assert record.get_json()["outcome"] == "rejected"
    assert record.get_json()["errors"][0]["pointer"] == "/applicant/credit_amount"
    assert count_rows(app) == 1


def test_imputed_field_is_recorded_and_never_a_reason(
    client: FlaskClient, scorer_token: str
) -> None:
    doc = decide(
        client, scorer_token, body(1, telephone=None, savings_account_and_bonds=...)
    ).get_json()
    imputed = {i["field"] for i in doc["imputations"]}
    assert imputed == {"telephone", "savings_account_and_bonds"}
    assert not imputed & {r["field"] for r in doc["reason_codes"]}


@pytest.mark.parametrize(
    ("payload", "status", "pointer"),
    [
        (b"{not json", 400, None),
        (b'["a list"]', 422, ""),
        (b'{"applicant": {}, "extra": 1}', 422, "/extra"),
        (b'{"applicant": "x"}', 422, "/applicant"),
        (b'{"applicant": {}, "application_id": 7}', 422, "/application_id"),
    ],
)
def test_malformed_bodies_get_precise_problems(
    app: Flask,
    client: FlaskClient,
    scorer_token: str,
    payload: bytes,
    status: int,
    pointer: str | None,
) -> None:
    resp = client.post(
        URL, data=payload, content_type="application/json", headers=bearer(scorer_token)
    )
    assert resp.status_code == status
    problem = resp.get_json()
    assert resp.mimetype == "application/problem+json" and problem["status"] == status
    if pointer is not None:
        assert pointer in [e["pointer"] for e in problem["errors"]]
    assert count_rows(app) == 1  # the rejection is on record too


def test_wrong_types_and_unknown_fields(client: FlaskClient, scorer_token: str) -> None:
    resp = decide(client, scorer_token, body(1, duration_in_month="48", shoe_size=44))
    assert resp.status_code == 422
    errors = {e["pointer"]: e["code"] for e in resp.get_json()["errors"]}
    assert errors == {"/applicant/duration_in_month": "type", "/applicant/shoe_size": "unknown"}


def test_unknown_pipeline_is_404_problem(client: FlaskClient, scorer_token: str) -> None:
    resp = client.post("/v1/pipelines/nope/decisions", json=body(), headers=bearer(scorer_token))
    assert resp.status_code == 404 and resp.mimetype == "application/problem+json"


def test_oversized_body_is_413(app: Flask, client: FlaskClient, scorer_token: str) -> None:
    big = b'{"applicant": {"purpose": "' + b"x" * 100_000 + b'"}}'
    resp = client.post(URL, data=big, content_type="application/json", headers=bearer(scorer_token))
    assert resp.status_code == 413 and resp.mimetype == "application/problem+json"
    assert count_rows(app) == 0


def test_not_json_is_415(client: FlaskClient, scorer_token: str) -> None:
    resp = client.post(
        URL, data="<a/>", content_type="application/xml", headers=bearer(scorer_token)
    )
    assert resp.status_code == 415


def test_idempotency_key_replays_and_conflicts(
    app: Flask, client: FlaskClient, scorer_token: str
) -> None:
    first = decide(client, scorer_token, body(1), **{"Idempotency-Key": "k-1"})
    again = decide(client, scorer_token, body(1), **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.get_json()["decision_id"] == again.get_json()["decision_id"]
    assert first.get_json()["probability_of_default"] == again.get_json()["probability_of_default"]
    other = decide(client, scorer_token, body(2), **{"Idempotency-Key": "k-1"})
    assert other.status_code == 409 and other.mimetype == "application/problem+json"
    assert count_rows(app) == 1


def test_rejection_replays_with_its_key(app: Flask, client: FlaskClient, scorer_token: str) -> None:
    bad = body(1, credit_amount=...)
    first = decide(client, scorer_token, bad, **{"Idempotency-Key": "k-2"})
    again = decide(client, scorer_token, bad, **{"Idempotency-Key": "k-2"})
    assert first.status_code == again.status_code == 422
    assert first.get_json()["decision_id"] == again.get_json()["decision_id"]
    assert first.get_json()["errors"] == again.get_json()["errors"]
    assert count_rows(app) == 1


def test_auth_on_decisions(client: FlaskClient, scorer_token: str, auditor_token: str) -> None:
    doc = decide(client, scorer_token, body(1)).get_json()
    path = f"/v1/decisions/{doc['decision_id']}"
    assert client.get(path, headers=bearer(auditor_token)).status_code == 200
    assert client.get(path, headers=bearer(scorer_token)).status_code == 403
    assert client.get(path).status_code == 401
    assert decide(client, auditor_token, body(1)).status_code == 403
    assert client.post(URL, json=body(1)).status_code == 401


def test_log_unavailable_is_503_and_nothing_answered(
    app: Flask, client: FlaskClient, scorer_token: str
) -> None:
    state = app.extensions["loangate"]
    with state.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE decisions RENAME TO decisions_gone"))
    resp = decide(client, scorer_token, body(1))
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "2"
    assert resp.mimetype == "application/problem+json"
    assert "outcome" not in resp.get_json()


def test_request_id_is_echoed(client: FlaskClient, scorer_token: str) -> None:
    resp = decide(client, scorer_token, body(1), **{"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    assert resp.get_json()["request_id"] == "abc-123"
    generated = decide(client, scorer_token, body(1), **{"X-Request-ID": "bad id; drop"})
    assert (
        generated.headers["X-Request-ID"] != "bad id; drop"
        and len(generated.headers["X-Request-ID"]) == 32
    )


def test_bad_idempotency_keys_are_400_not_stored(
    app: Flask, client: FlaskClient, scorer_token: str
) -> None:
    for key in ("k" * 201, "tab\there"):
        resp = decide(client, scorer_token, body(1), **{"Idempotency-Key": key})
        assert resp.status_code == 400
        assert resp.get_json()["errors"][0]["pointer"] == "/headers/Idempotency-Key"
    broken = client.post(
        URL,
        data=b"{oops",
        content_type="application/json",
        headers={**bearer(scorer_token), "Idempotency-Key": "k" * 300},
    )
    assert broken.status_code == 400  # malformed body, bad key: logged without the key
    with app.extensions["loangate"].engine.connect() as conn:
        keys = conn.execute(sa.text("select idempotency_key from decisions")).scalars().all()
    assert keys == [None, None, None]  # each refusal is on record, none under a bad key


def test_reads_answer_503_when_the_log_is_unavailable(
    app: Flask, client: FlaskClient, auditor_token: str
) -> None:
    with app.extensions["loangate"].engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE decisions RENAME TO decisions_gone"))
    for path in ("/v1/decisions", "/v1/decisions/01M89JGWCFF86YS25Y2YKCR9QP"):
        resp = client.get(path, headers=bearer(auditor_token))
        assert resp.status_code == 503 and resp.headers["Retry-After"] == "2"
