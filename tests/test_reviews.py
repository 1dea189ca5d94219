"""Human review of referred decisions, on SQLite and PostgreSQL: queue, review, report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import jsonschema
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import bearer
from tests.review_helpers import decisions_with


def stored_row(app: Flask, decision_id: str) -> tuple[Any, ...]:
    """Every column of the decision's row, as the database holds it."""
    with app.extensions["loangate"].engine.connect() as conn:
        row = conn.execute(
            sa.text("select * from decisions where id = :id"), {"id": decision_id}
        ).one()
    return tuple(row)


def review(client: FlaskClient, token: str, decision_id: str, payload: Any, **kwargs: Any) -> Any:
    return client.post(
        f"/v1/decisions/{decision_id}/review", json=payload, headers=bearer(token), **kwargs
    )


def queue(client: FlaskClient, token: str, **params: Any) -> Any:
    return client.get("/v1/reviews", query_string=params, headers=bearer(token))


def test_refer_review_outcome_is_visible_to_the_auditor_and_the_original_is_unchanged(
    app: Flask, client: FlaskClient, tokens: dict[str, str]
) -> None:
    (referred,) = decisions_with(client, tokens["scorer"], "refer")
    decision_id = referred["decision_id"]
    before = stored_row(app, decision_id)
    audit_before = client.get(f"/v1/decisions/{decision_id}", headers=bearer(tokens["auditor"]))

    pending = queue(client, tokens["reviewer"]).get_json()
    assert [item["decision"]["decision_id"] for item in pending["items"]] == [decision_id]
    assert pending["items"][0]["review"] is None
    assert pending["items"][0]["decision"]["application"]  # the reviewer sees what they judge

    resp = review(
        client,
        tokens["reviewer"],
        decision_id,
        {"final_outcome": "approve", "justification": "  Salary slip verified by phone.  "},
    )
    assert resp.status_code == 201, resp.get_json()
    made = resp.get_json()
    assert made["final_outcome"] == "approve" and made["model_outcome"] == "refer"
    assert made["justification"] == "Salary slip verified by phone."
    assert made["reviewer"].startswith("lgc_")
    assert resp.headers["Location"] == f"/v1/decisions/{decision_id}"

    outcome = client.post(
        f"/v1/decisions/{decision_id}/outcome",
        json={"status": "repaid", "date": referred["decided_at"][:10]},
        headers=bearer(tokens["lender"]),
    )
    assert outcome.status_code == 201, outcome.get_json()

    audit = client.get(f"/v1/decisions/{decision_id}", headers=bearer(tokens["auditor"]))
    record = audit.get_json()
    assert record["outcome"] == "refer"  # the model's decision, as logged
    assert record["review"]["final_outcome"] == "approve"  # the reviewer's, beside it
    assert record["review"]["reviewer"] == made["reviewer"]
    assert record["loan_outcome"]["status"] == "repaid"
    original = {k: v for k, v in record.items() if k not in ("review", "loan_outcome")}
    assert original == {
        k: v for k, v in audit_before.get_json().items() if k not in ("review", "loan_outcome")
    }
    # the stored row, document included, is byte for byte what was logged
    assert stored_row(app, decision_id) == before
    assert audit.data.startswith(audit_before.data[: audit_before.data.index(b',"review":')])

    assert queue(client, tokens["reviewer"]).get_json()["items"] == []
    done = queue(client, tokens["reviewer"], status="done").get_json()
    assert [
        (i["decision"]["decision_id"], i["review"]["final_outcome"]) for i in done["items"]
    ] == [(decision_id, "approve")]

    (other,) = decisions_with(client, tokens["scorer"], "approve")
    listed = {
        flag: [
            d["decision_id"]
            for d in client.get(
                f"/v1/decisions?reviewed={flag}", headers=bearer(tokens["auditor"])
            ).get_json()["items"]
        ]
        for flag in ("true", "false")
    }
    assert listed["true"] == [decision_id]
    assert other["decision_id"] in listed["false"] and decision_id not in listed["false"]
    bad = client.get("/v1/decisions?reviewed=yes", headers=bearer(tokens["auditor"]))
    assert bad.status_code == 400

    spec = client.get("/openapi.json").get_json()
    report = client.get("/v1/reviews/report", headers=bearer(tokens["auditor"])).get_json()
    for name, instance in (
        ("Review", made),
        ("LoanOutcome", outcome.get_json()),
        ("Decision", record),
        ("ReviewPage", pending),
        ("ReviewPage", done),
        ("ReviewReport", report),
    ):
        jsonschema.Draft202012Validator(
            {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
        ).validate(instance)


def test_review_needs_the_review_scope(
    client: FlaskClient, tokens: dict[str, str], get_token: Callable[..., str]
) -> None:
    (referred,) = decisions_with(client, tokens["scorer"], "refer")
    payload = {"final_outcome": "approve", "justification": "ok"}
    for who in ("auditor", "scorer", "lender"):
        resp = review(client, tokens[who], referred["decision_id"], payload)
        assert resp.status_code == 403, who
        assert resp.mimetype == "application/problem+json"
    assert queue(client, tokens["auditor"]).status_code == 403
    anonymous = client.post(f"/v1/decisions/{referred['decision_id']}/review", json=payload)
    assert anonymous.status_code == 401
    assert review(client, tokens["reviewer"], referred["decision_id"], payload).status_code == 201


def test_only_a_referral_is_reviewed_and_only_once(
    app: Flask, client: FlaskClient, tokens: dict[str, str]
) -> None:
    (approved,) = decisions_with(client, tokens["scorer"], "approve")
    (declined,) = decisions_with(client, tokens["scorer"], "decline")
    (referred,) = decisions_with(client, tokens["scorer"], "refer")
    payload = {"final_outcome": "decline", "justification": "Income could not be verified."}
    for doc in (approved, declined):
        resp = review(client, tokens["reviewer"], doc["decision_id"], payload)
        assert resp.status_code == 409 and "not referred" in resp.get_json()["detail"]
    assert review(client, tokens["reviewer"], referred["decision_id"], payload).status_code == 201
    again = review(
        client,
        tokens["reviewer"],
        referred["decision_id"],
        {"final_outcome": "approve", "justification": "second opinion"},
    )
    assert again.status_code == 409 and "already been reviewed" in again.get_json()["detail"]
    missing = review(client, tokens["reviewer"], "01JZZZZZZZZZZZZZZZZZZZZZZZ", payload)
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    with app.extensions["loangate"].engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from reviews")).scalar_one() == 1


BAD_REVIEWS: list[tuple[Any, str, str]] = [
    ({"final_outcome": "approve"}, "/justification", "required"),
    ({"final_outcome": "approve", "justification": "   \n "}, "/justification", "required"),
    ({"final_outcome": "approve", "justification": "x" * 4001}, "/justification", "maxLength"),
    ({"final_outcome": "approve", "justification": ["a"]}, "/justification", "type"),
    ({"final_outcome": "approve", "justification": "a\x00b"}, "/justification", "characters"),
    ({"final_outcome": "refer", "justification": "why"}, "/final_outcome", "enum"),
    ({"final_outcome": 1, "justification": "why"}, "/final_outcome", "enum"),
    ({"justification": "why"}, "/final_outcome", "required"),
    (
        {"final_outcome": "approve", "justification": "j", "reviewer": "me"},
        "/reviewer",
        "unknown",
    ),
    (["approve", "why"], "", "type"),
]


def test_bad_review_bodies_are_422_naming_the_member(
    app: Flask, client: FlaskClient, tokens: dict[str, str]
) -> None:
    (referred,) = decisions_with(client, tokens["scorer"], "refer")
    for payload, pointer, code in BAD_REVIEWS:
        resp = review(client, tokens["reviewer"], referred["decision_id"], payload)
        assert resp.status_code == 422, (payload, resp.get_json())
        assert resp.mimetype == "application/problem+json"
        assert {"pointer": pointer, "code": code} in [
            {"pointer": e["pointer"], "code": e["code"]} for e in resp.get_json()["errors"]
        ], payload
    with app.extensions["loangate"].engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from reviews")).scalar_one() == 0


def test_hostile_review_input(app: Flask, client: FlaskClient, tokens: dict[str, str]) -> None:
    (first, second) = decisions_with(client, tokens["scorer"], "refer", 2)
    url = f"/v1/decisions/{first['decision_id']}/review"
    assert (
        client.post(
            url,
            data=b"{not json",
            content_type="application/json",
            headers=bearer(tokens["reviewer"]),
        ).status_code
        == 400
    )
    as_form = client.post(
        url, data={"final_outcome": "approve"}, headers=bearer(tokens["reviewer"])
    )
    assert as_form.status_code == 415
    oversized = client.post(
        url,
        data=b'{"final_outcome":"approve","justification":"' + b"x" * 70000 + b'"}',
        content_type="application/json",
        headers=bearer(tokens["reviewer"]),
    )
    assert oversized.status_code == 413
    sqlish = "'); DROP TABLE reviews; -- <b>\u202e"
    resp = review(
        client,
        tokens["reviewer"],
        first["decision_id"],
        {"final_outcome": "decline", "justification": sqlish},
    )
    assert resp.status_code == 201 and resp.get_json()["justification"] == sqlish.strip()
    for bad_id in ("' OR '1'='1", "x" * 300, "%00"):
        assert (
            review(
                client,
                tokens["reviewer"],
                bad_id,
                {"final_outcome": "approve", "justification": "j"},
            ).status_code
            == 404
        )
    assert (
        review(
            client,
            tokens["reviewer"],
            second["decision_id"],
            {"final_outcome": "approve", "justification": "fine"},
        ).status_code
        == 201
    )  # the reviews table is still there
    audit = client.get(f"/v1/decisions/{first['decision_id']}", headers=bearer(tokens["auditor"]))
    assert audit.get_json()["review"]["justification"] == sqlish.strip()


def test_queue_is_oldest_first_with_cursor_pages(
    client: FlaskClient, tokens: dict[str, str]
) -> None:
    referred = decisions_with(client, tokens["scorer"], "refer", 3)
    ids = [d["decision_id"] for d in referred]
    first = queue(client, tokens["reviewer"], limit=2).get_json()
    assert [i["decision"]["decision_id"] for i in first["items"]] == ids[:2]
    second = queue(client, tokens["reviewer"], limit=2, cursor=first["next_cursor"]).get_json()
    assert [i["decision"]["decision_id"] for i in second["items"]] == ids[2:]
    assert second["next_cursor"] is None
    for params in ({"status": "open"}, {"cursor": "nope"}, {"limit": 0}, {"outcome": "refer"}):
        resp = queue(client, tokens["reviewer"], **params)
        assert resp.status_code == 400, params
        assert resp.get_json()["errors"][0]["pointer"].startswith("/query/")


def test_override_report_per_reason_code(client: FlaskClient, tokens: dict[str, str]) -> None:
    referred = decisions_with(client, tokens["scorer"], "refer", 4)
    verdicts = ["approve", "approve", "decline"]  # the fourth stays pending
    for doc, verdict in zip(referred, verdicts, strict=False):
        payload = {"final_outcome": verdict, "justification": f"{verdict} after a call"}
        assert review(client, tokens["reviewer"], doc["decision_id"], payload).status_code == 201
    reviewed = Counter[str]()
    approved = Counter[str]()
    for doc, verdict in zip(referred, verdicts, strict=False):
        for code in {r["code"] for r in doc["reason_codes"]}:
            reviewed[code] += 1
            approved[code] += verdict == "approve"
    assert reviewed, "referrals carry reason codes"

    resp = client.get("/v1/reviews/report", headers=bearer(tokens["auditor"]))
    assert resp.status_code == 200
    report = resp.get_json()
    assert report["totals"] == {
        "reviewed": 3,
        "approved": 2,
        "declined": 1,
        "override_rate": round(2 / 3, 4),
        "pending": 1,
    }
    assert report["reason_codes"] == [
        {
            "code": code,
            "reviewed": reviewed[code],
            "approved": approved[code],
            "declined": reviewed[code] - approved[code],
            "override_rate": round(approved[code] / reviewed[code], 4),
        }
        for code in sorted(reviewed)
    ]
    assert client.get("/v1/reviews/report", headers=bearer(tokens["reviewer"])).status_code == 403
    assert (
        client.get("/v1/reviews/report?since=x", headers=bearer(tokens["auditor"])).status_code
        == 400
    )


def test_empty_report(client: FlaskClient, tokens: dict[str, str]) -> None:
    report = client.get("/v1/reviews/report", headers=bearer(tokens["auditor"])).get_json()
    assert report == {
        "reason_codes": [],
        "totals": {
            "reviewed": 0,
            "approved": 0,
            "declined": 0,
            "override_rate": None,
            "pending": 0,
        },
    }
