"""Audit queries (filters, cursor pagination) and the OpenAPI description."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
from flask.testing import FlaskClient
from openapi_spec_validator import validate as validate_spec

from tests.conftest import bearer
from tests.helpers import applicants, body

URL = "/v1/pipelines/credit-risk/decisions"


def make_decisions(client: FlaskClient, token: str, n: int, start: int = 0) -> list[dict[str, Any]]:
    rows = applicants()
    out = []
    for i in range(start, start + n):
        resp = client.post(
            URL, json={"applicant": rows[i], "application_id": f"APP-{i}"}, headers=bearer(token)
        )
        assert resp.status_code == 201
        out.append(resp.get_json())
    return out


def query(client: FlaskClient, token: str, **params: Any) -> Any:
    return client.get("/v1/decisions", query_string=params, headers=bearer(token))


def test_filters(client: FlaskClient, tokens: dict[str, str]) -> None:
    made = make_decisions(client, tokens["scorer"], 12)
    auditor = tokens["auditor"]
    everything = query(client, auditor).get_json()
    assert [d["decision_id"] for d in everything["items"]] == [
        d["decision_id"] for d in reversed(made)
    ]
    assert everything["next_cursor"] is None

    by_outcome: dict[str, set[str]] = {}
    for d in made:
        by_outcome.setdefault(d["outcome"], set()).add(d["decision_id"])
    for outcome, ids in by_outcome.items():
        got = {
            d["decision_id"] for d in query(client, auditor, outcome=outcome).get_json()["items"]
        }
        assert got == ids

    one = query(client, auditor, application_id="APP-3").get_json()["items"]
    assert [d["application_id"] for d in one] == ["APP-3"]
    assert query(client, auditor, client_id=made[0]["client_id"]).get_json()["items"]
    assert query(client, auditor, client_id="someone-else").get_json()["items"] == []
    assert (
        len(query(client, auditor, model_name="german-credit", model_version=1).get_json()["items"])
        == 12
    )
    assert query(client, auditor, model_version=2).get_json()["items"] == []

    future = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    assert query(client, auditor, since=future).get_json()["items"] == []
    assert len(query(client, auditor, since=past, until=future).get_json()["items"]) == 12


def test_cursor_pagination_is_stable_while_decisions_arrive(
    client: FlaskClient, tokens: dict[str, str]
) -> None:
    made = make_decisions(client, tokens["scorer"], 7)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = query(client, tokens["auditor"], **params).get_json()
        seen += [d["decision_id"] for d in page["items"]]
        pages += 1
        if pages == 1:
            make_decisions(client, tokens["scorer"], 2, start=100)  # arrive mid-listing
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [d["decision_id"] for d in reversed(made)]
    assert pages == 3


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"outcome": "maybe"}, "outcome"),
        ({"limit": 0}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-01-01T00:00:00"}, "since"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"order": "id; DROP TABLE decisions"}, "order"),
    ],
)
def test_bad_query_parameters_are_400_naming_them(
    client: FlaskClient, tokens: dict[str, str], params: dict[str, Any], name: str
) -> None:
    resp = query(client, tokens["auditor"], **params)
    assert resp.status_code == 400 and resp.mimetype == "application/problem+json"
    assert resp.get_json()["errors"][0]["pointer"] == f"/query/{name}"


def test_sql_ish_filter_values_are_just_values(client: FlaskClient, tokens: dict[str, str]) -> None:
    make_decisions(client, tokens["scorer"], 2)
    for value in ("' OR '1'='1", "x'; DROP TABLE decisions; --", "%", "_"):
        resp = query(client, tokens["auditor"], application_id=value, pipeline=value)
        assert resp.status_code == 200 and resp.get_json()["items"] == []
    assert len(query(client, tokens["auditor"]).get_json()["items"]) == 2


def spec_validator(spec: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    )


def test_openapi_document_is_valid_and_describes_responses(
    client: FlaskClient, tokens: dict[str, str]
) -> None:
    spec = client.get("/openapi.json").get_json()
    validate_spec(spec)
    assert spec["openapi"].startswith("3.1")
    app_routes = {
        re.sub(r"<\w+:(\w+)>", r"<\1>", str(r))  # <int:version> is {version} in OpenAPI
        for r in client.application.url_map.iter_rules()
        if not str(r).startswith("/console/")  # the console's pages: docs/console.md
    } - {"/static/<filename>"}
    documented = {p.replace("{", "<").replace("}", ">") for p in spec["paths"]}
    assert app_routes <= documented, app_routes - documented

    request_schema = spec_validator(spec, "Application_credit_risk")
    request_schema.validate(body(1))
    with pytest.raises(jsonschema.ValidationError):
        request_schema.validate(body(1, shoe_size=1))

    made = make_decisions(client, tokens["scorer"], 1)[0]
    spec_validator(spec, "Decision").validate(made)
    page = query(client, tokens["auditor"]).get_json()
    spec_validator(spec, "DecisionPage").validate(page)
    problem = client.post(URL, json=body(1, credit_amount=...), headers=bearer(tokens["scorer"]))
    spec_validator(spec, "Problem").validate(problem.get_json())
