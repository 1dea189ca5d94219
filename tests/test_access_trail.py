"""The access trail of reads of decisions, and the reason-code index migration."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from gateway import db
from gateway.auth.clients import create_client
from gateway.decision_log import DecisionLog
from gateway.integrity.sealer import seal_all
from tests.conftest import PG_URL, bearer, drop_schema
from tests.integrity_helpers import synthetic_row
from tests.review_helpers import decisions_with
from tests.test_api_audit import make_decisions

TRAIL = "/v1/audit/access-trail"


def new_client(app: Flask, client: FlaskClient, *scopes: str) -> tuple[str, str]:
    """(client id, access token) of a new client holding ``scopes``."""
    client_id, secret = create_client(app.extensions["loangate"].engine, "auditor", list(scopes))
    resp = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": " ".join(scopes)},
        auth=(client_id, secret),
    )
    assert resp.status_code == 200
    return client_id, resp.get_json()["access_token"]


def trail(client: FlaskClient, token: str, **params: Any) -> Any:
    return client.get(TRAIL, query_string=params, headers=bearer(token))


def test_trail_route_needs_audit_read_and_checks_its_parameters(
    app: Flask, client: FlaskClient, tokens: dict[str, str]
) -> None:
    assert client.get(TRAIL).status_code == 401
    assert trail(client, tokens["auditor"]).status_code == 403  # decisions:read is not enough
    _, officer = new_client(app, client, "audit:read")
    for params, name in (
        ({"actor": "x" * 300}, "actor"),
        ({"channel": "telex"}, "channel"),
        ({"since": "yesterday"}, "since"),
        ({"cursor": "' OR 1=1 --"}, "cursor"),
        ({"decision_id": "x"}, "decision_id"),
    ):
        resp = trail(client, officer, **params)
        assert resp.status_code == 400
        assert resp.get_json()["errors"][0]["pointer"] == f"/query/{name}"
    assert trail(client, officer, actor="' OR 1=1 --").get_json()["items"] == []


def test_every_read_of_decisions_is_recorded(
    app: Flask, client: FlaskClient, tokens: dict[str, str]
) -> None:
    (declined,) = decisions_with(client, tokens["scorer"], "decline")
    make_decisions(client, tokens["scorer"], 3)
    seal_all(app.extensions["loangate"].engine)
    auditor_id, auditor = new_client(app, client, "decisions:read")
    decision_id = declined["decision_id"]
    reads = [
        ("/v1/decisions?outcome=approve&limit=5", "GET /v1/decisions"),
        (f"/v1/decisions/{decision_id}", "GET /v1/decisions/<decision_id>"),
        ("/v1/decisions/aggregates?group_by=outcome", "GET /v1/decisions/aggregates"),
        ("/v1/decisions/export?format=csv", "GET /v1/decisions/export"),
        (f"/v1/decisions/{decision_id}/notice", "GET /v1/decisions/<decision_id>/notice"),
        (f"/v1/decisions/{decision_id}/evidence", "GET /v1/decisions/<decision_id>/evidence"),
        ("/v1/reviews/report", "GET /v1/reviews/report"),
    ]
    for url, _ in reads:
        resp = client.get(url, headers=bearer(auditor))
        assert resp.status_code == 200, (url, resp.data[:300])
    # Failed reads disclose nothing and are not recorded.
    assert client.get("/v1/decisions?limit=0", headers=bearer(auditor)).status_code == 400
    missing = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    assert client.get(f"/v1/decisions/{missing}", headers=bearer(auditor)).status_code == 404

    _, officer = new_client(app, client, "audit:read")
    resp = trail(client, officer, actor=auditor_id)
    assert resp.status_code == 200
    items = resp.get_json()["items"]
    assert [i["action"] for i in items] == [action for _, action in reversed(reads)]
    assert {i["actor"] for i in items} == {auditor_id}
    assert {i["channel"] for i in items} == {"api"}
    by_action = {i["action"]: i for i in items}
    listed = by_action["GET /v1/decisions"]
    with app.extensions["loangate"].engine.connect() as conn:
        approvals = conn.execute(
            sa.text("select count(*) from decisions where outcome = 'approve'")
        ).scalar_one()
    assert listed["params"] == {"outcome": "approve", "limit": 5}
    assert listed["result_count"] == approvals
    one = by_action["GET /v1/decisions/<decision_id>"]
    assert one["params"] == {"decision_id": decision_id} and one["result_count"] == 1
    assert by_action["GET /v1/decisions/aggregates"]["params"] == {"group_by": "outcome"}
    assert by_action["GET /v1/decisions/export"]["params"] == {"format": "csv"}
    assert all(i["request_id"] for i in items)
    raw = resp.data.decode()
    assert auditor not in raw and "Bearer" not in raw  # never a token

    page = trail(client, officer, limit=2).get_json()
    rest = trail(client, officer, limit=50, cursor=page["next_cursor"]).get_json()
    assert [i["id"] for i in page["items"] + rest["items"]] == [
        i["id"] for i in trail(client, officer, limit=50).get_json()["items"]
    ]


def test_reading_the_review_queue_is_recorded(
    app: Flask, client: FlaskClient, tokens: dict[str, str]
) -> None:
    make_decisions(client, tokens["scorer"], 6)
    queue = client.get("/v1/reviews", headers=bearer(tokens["reviewer"]))
    assert queue.status_code == 200
    _, officer = new_client(app, client, "audit:read")
    items = trail(client, officer).get_json()["items"]
    (read,) = [i for i in items if i["action"] == "GET /v1/reviews"]
    assert read["result_count"] == len(queue.get_json()["items"])


def test_a_read_that_cannot_be_recorded_is_refused(
    app: Flask, client: FlaskClient, tokens: dict[str, str]
) -> None:
    made = make_decisions(client, tokens["scorer"], 2)
    with app.extensions["loangate"].engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE access_trail"))
    auditor = bearer(tokens["auditor"])
    for url in (
        "/v1/decisions",
        f"/v1/decisions/{made[0]['decision_id']}",
        "/v1/decisions/aggregates?group_by=day",
        "/v1/decisions/export?format=parquet",
    ):
        resp = client.get(url, headers=auditor)
        assert resp.status_code == 503, url
        assert resp.mimetype == "application/problem+json"
        assert made[1]["decision_id"].encode() not in resp.data  # no record went out


def test_trail_and_reason_index_are_append_only_on_postgresql(
    app: Flask, client: FlaskClient, tokens: dict[str, str], db_url: str
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("the append-only triggers are PostgreSQL's")
    make_decisions(client, tokens["scorer"], 2)
    assert client.get("/v1/decisions", headers=bearer(tokens["auditor"])).status_code == 200
    engine = app.extensions["loangate"].engine
    for sql in (
        "UPDATE access_trail SET actor = 'someone-else'",
        "DELETE FROM access_trail",
        "TRUNCATE access_trail",
        "UPDATE decision_reasons SET code = 'X'",
        "DELETE FROM decision_reasons",
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(sql))
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from access_trail")).scalar_one() == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_backfills_the_reason_index(
    backend: str, tmp_path: Path, pg_available: bool
) -> None:
    if backend == "postgresql" and not pg_available:
        pytest.skip("PostgreSQL not reachable")
    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    engine = db.make_engine(url)
    try:
        db.upgrade(engine, "0009")  # a log written before the index existed
        expected = set()
        log = DecisionLog(engine)  # no companions: as the gateway then wrote
        for i in range(7):
            row = synthetic_row(i)
            document = orjson.loads(row["document"])
            document["reason_codes"] = [
                {"code": f"R{j}", "field": f"f{j}", "text": "t", "contribution": 0.1}
                for j in range(i % 3)
            ] + (
                [{"code": "R0", "field": "f0", "text": "t", "contribution": 0.1}] if i == 5 else []
            )
            row["document"] = orjson.dumps(document).decode()
            log.append(row)
            expected |= {(row["id"], f"R{j}") for j in range(i % 3)}
        db.upgrade(engine)
        with engine.connect() as conn:
            got = set(conn.execute(sa.text("select decision_id, code from decision_reasons")))
        assert got == expected and len(got) == 6  # 0+1+2+0+1+2+0 codes; a repeat counts once
    finally:
        engine.dispose()
        drop_schema(schema)
