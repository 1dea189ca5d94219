"""Loan outcomes, one at a time and in batches (JSON and CSV), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from gateway.outcomes import MAX_BATCH_ROWS, OutcomeRow, parse_csv_rows, parse_row
from tests.conftest import bearer
from tests.review_helpers import decisions_with

TODAY = datetime.now(UTC).date().isoformat()


def post_outcome(client: FlaskClient, token: str, decision_id: str, payload: Any) -> Any:
    return client.post(f"/v1/decisions/{decision_id}/outcome", json=payload, headers=bearer(token))


def upload(client: FlaskClient, token: str, **kwargs: Any) -> Any:
    return client.post("/v1/outcomes", headers=bearer(token), **kwargs)


def outcome_count(app: Flask) -> int:
    with app.extensions["loangate"].engine.connect() as conn:
        return int(conn.execute(sa.text("select count(*) from loan_outcomes")).scalar_one())


def test_one_outcome_per_decision_idempotent(
    app: Flask, client: FlaskClient, tokens: dict[str, str]
) -> None:
    (approved,) = decisions_with(client, tokens["scorer"], "approve")
    decision_id = approved["decision_id"]
    payload = {"status": "defaulted", "date": TODAY}
    first = post_outcome(client, tokens["lender"], decision_id, payload)
    assert first.status_code == 201, first.get_json()
    assert first.get_json() | {"recorded_at": None, "recorded_by": None} == {
        "decision_id": decision_id,
        "status": "defaulted",
        "date": TODAY,
        "recorded_at": None,
        "recorded_by": None,
    }
    again = post_outcome(client, tokens["lender"], decision_id, payload)
    assert again.status_code == 200 and again.get_json() == first.get_json()
    other = post_outcome(client, tokens["lender"], decision_id, {"status": "repaid", "date": TODAY})
    assert other.status_code == 409 and "already recorded" in other.get_json()["detail"]
    audit = client.get(f"/v1/decisions/{decision_id}", headers=bearer(tokens["auditor"]))
    assert audit.get_json()["loan_outcome"]["status"] == "defaulted"
    assert outcome_count(app) == 1


def test_only_granted_loans_have_outcomes(
    app: Flask, client: FlaskClient, tokens: dict[str, str]
) -> None:
    (declined,) = decisions_with(client, tokens["scorer"], "decline")
    refused, approved_later = decisions_with(client, tokens["scorer"], "refer", 2)
    payload = {"status": "repaid", "date": TODAY}
    resp = post_outcome(client, tokens["lender"], declined["decision_id"], payload)
    assert resp.status_code == 409 and "not granted" in resp.get_json()["detail"]
    resp = post_outcome(client, tokens["lender"], refused["decision_id"], payload)
    assert resp.status_code == 409 and "not yet approved" in resp.get_json()["detail"]
    for doc, verdict in ((refused, "decline"), (approved_later, "approve")):
        client.post(
            f"/v1/decisions/{doc['decision_id']}/review",
            json={"final_outcome": verdict, "justification": "checked"},
            headers=bearer(tokens["reviewer"]),
        )
    assert (
        post_outcome(client, tokens["lender"], refused["decision_id"], payload).status_code == 409
    )
    resp = post_outcome(client, tokens["lender"], approved_later["decision_id"], payload)
    assert resp.status_code == 201
    assert outcome_count(app) == 1


BAD_SINGLE: list[tuple[Any, int, str]] = [
    ({"status": "repaid"}, 422, "/date"),
    ({"date": TODAY}, 422, "/status"),
    ({"status": "paid", "date": TODAY}, 422, "/status"),
    ({"status": "repaid", "date": "2026-02-30"}, 422, "/date"),
    ({"status": "repaid", "date": "26-1-1"}, 422, "/date"),
    ({"status": "repaid", "date": 20260101}, 422, "/date"),
    ({"status": ["repaid"], "date": TODAY}, 422, "/status"),
    ({"status": "repaid", "date": "2000-01-01"}, 422, "/date"),
    (
        {"status": "repaid", "date": (date.today() + timedelta(days=30)).isoformat()},
        422,
        "/date",
    ),
    ({"status": "repaid", "date": TODAY, "amount": 5}, 422, "/amount"),
    ({"status": "repaid", "date": TODAY, "decision_id": "x"}, 422, "/decision_id"),
    (["repaid", TODAY], 422, ""),
]


def test_bad_single_outcomes(app: Flask, client: FlaskClient, tokens: dict[str, str]) -> None:
    (approved,) = decisions_with(client, tokens["scorer"], "approve")
    for payload, status, pointer in BAD_SINGLE:
        resp = post_outcome(client, tokens["lender"], approved["decision_id"], payload)
        assert resp.status_code == status, (payload, resp.get_json())
        assert resp.mimetype == "application/problem+json"
        assert pointer in [e["pointer"] for e in resp.get_json()["errors"]], payload
    assert outcome_count(app) == 0


def test_outcomes_need_their_scope_and_a_known_decision(
    client: FlaskClient, tokens: dict[str, str]
) -> None:
    (approved,) = decisions_with(client, tokens["scorer"], "approve")
    payload = {"status": "repaid", "date": TODAY}
    for who in ("auditor", "reviewer", "scorer"):
        assert (
            post_outcome(client, tokens[who], approved["decision_id"], payload).status_code == 403
        )
        assert upload(client, tokens[who], json=[]).status_code == 403
    for unknown in ("01JZZZZZZZZZZZZZZZZZZZZZZZ", "not-an-id", "' OR 1=1 --", "%00"):
        resp = post_outcome(client, tokens["lender"], unknown, payload)
        assert resp.status_code == 404, unknown


def test_json_batch_is_all_or_nothing_and_names_bad_rows(
    app: Flask, client: FlaskClient, tokens: dict[str, str]
) -> None:
    approved = decisions_with(client, tokens["scorer"], "approve", 3)
    (declined,) = decisions_with(client, tokens["scorer"], "decline")
    ids = [d["decision_id"] for d in approved]
    rows = [
        {"decision_id": ids[0], "status": "repaid", "date": TODAY},
        {"decision_id": ids[1], "status": "late", "date": TODAY},
        {"decision_id": declined["decision_id"], "status": "repaid", "date": TODAY},
        {"decision_id": "01JZZZZZZZZZZZZZZZZZZZZZZZ", "status": "repaid", "date": TODAY},
        "not an object",
        {"decision_id": ids[2], "status": "repaid", "date": TODAY, "note": "x"},
    ]
    resp = upload(client, tokens["lender"], json=rows)
    assert resp.status_code == 422
    problem = resp.get_json()
    assert "no row was recorded" in problem["detail"]
    named = {(e["pointer"], e["code"]) for e in problem["errors"]}
    assert named == {
        ("/1/status", "enum"),
        ("/4/", "type"),
        ("/5/note", "unknown"),
    }  # malformed rows are named before any is looked up
    assert all(
        e["detail"].startswith(f"row {int(e['pointer'].split('/')[1]) + 1}")
        for e in problem["errors"]
    )
    assert outcome_count(app) == 0

    rows[1]["status"] = "defaulted"  # type: ignore[index]
    del rows[5]["note"]  # type: ignore[union-attr]
    rows.pop(4)
    resp = upload(client, tokens["lender"], json=rows)
    assert resp.status_code == 422
    assert {(e["pointer"], e["code"]) for e in resp.get_json()["errors"]} == {
        ("/2/decision_id", "not-granted"),
        ("/3/decision_id", "not-found"),
    }
    assert outcome_count(app) == 0

    good = [rows[0], rows[1], rows[4], rows[0]]  # a repeated identical row is harmless
    resp = upload(client, tokens["lender"], json=good)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"rows": 4, "recorded": 3, "unchanged": 1}
    assert upload(client, tokens["lender"], json=good).get_json() == {
        "rows": 4,
        "recorded": 0,
        "unchanged": 4,
    }
    clash = [{**rows[0], "status": "defaulted"}]
    resp = upload(client, tokens["lender"], json=clash)
    assert resp.status_code == 422 and resp.get_json()["errors"][0]["code"] == "conflict"
    twice = [
        {"decision_id": declined["decision_id"], "status": "repaid", "date": TODAY},
    ]
    assert upload(client, tokens["lender"], json=twice).status_code == 422
    assert outcome_count(app) == 3


def test_csv_batch(app: Flask, client: FlaskClient, tokens: dict[str, str]) -> None:
    approved = decisions_with(client, tokens["scorer"], "approve", 2)
    a, b = (d["decision_id"] for d in approved)
    bad = f"decision_id,status,date\r\n{a},repaid,{TODAY}\r\n{b},repaid,yesterday\r\n"
    resp = upload(client, tokens["lender"], data=bad.encode(), content_type="text/csv")
    assert resp.status_code == 422
    (error,) = resp.get_json()["errors"]
    assert error["pointer"] == "/1/date" and error["detail"].startswith("row 2 (line 3):")
    assert outcome_count(app) == 0

    good = f"\ufeffdecision_id,status,date\n{a},repaid,{TODAY}\n{b}, defaulted ,{TODAY}\n"
    resp = upload(client, tokens["lender"], data=good.encode(), content_type="text/csv")
    assert resp.status_code == 200 and resp.get_json()["recorded"] == 2
    with app.extensions["loangate"].engine.connect() as conn:
        stored = dict(conn.execute(sa.text("select decision_id, status from loan_outcomes")).all())
    assert stored == {a: "repaid", b: "defaulted"}


BAD_BATCHES: list[tuple[bytes, str, int]] = [
    (b"id,status,date\nx,repaid,2026-01-01\n", "text/csv", 400),
    (b"decision_id,status,date\n", "text/csv", 400),
    (b"decision_id,status,date\n\x00,repaid,2026-01-01\n", "text/csv", 422),
    (b"decision_id,status,date\n\xff\xfe,repaid,2026-01-01\n", "text/csv", 400),
    (b"decision_id,status,date\na,b\n", "text/csv", 422),
    (b'{"decision_id": "x"}', "application/json", 400),
    (b"[]", "application/json", 422),
    (b"[1", "application/json", 400),
    (b"decision_id=x", "application/x-www-form-urlencoded", 415),
]


def test_bad_batches(app: Flask, client: FlaskClient, tokens: dict[str, str]) -> None:
    for data, content_type, status in BAD_BATCHES:
        resp = upload(client, tokens["lender"], data=data, content_type=content_type)
        assert resp.status_code == status, (data, resp.get_json())
        assert resp.mimetype == "application/problem+json"
    assert outcome_count(app) == 0


def test_batch_row_limit() -> None:
    header = "decision_id,status,date\n"
    too_many = header + "01JZZZZZZZZZZZZZZZZZZZZZZZ,repaid,2026-01-01\n" * (MAX_BATCH_ROWS + 1)
    with pytest.raises(Exception, match="at most") as caught:
        parse_csv_rows(too_many.encode())
    assert getattr(caught.value, "status", None) == 413


@given(
    st.dictionaries(
        st.text(max_size=12), st.one_of(st.text(max_size=30), st.integers(), st.none()), max_size=5
    )
)
def test_property_any_row_parses_or_is_named(item: dict[str, Any]) -> None:
    parsed = parse_row(item, 7)
    if isinstance(parsed, OutcomeRow):
        assert set(item) == {"decision_id", "status", "date"}
    else:
        assert parsed and all(
            e.index == 7 and e.field_error().pointer.startswith("/7/") for e in parsed
        )
