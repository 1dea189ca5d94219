"""Governance queries: filters, sorting, cursors and aggregates, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from statistics import fmean
from typing import Any

import orjson
import pandas as pd
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from gateway.batch.runner import score_file
from gateway.decision_log import encode_cursor
from tests.batch_files import german_rows
from tests.conftest import bearer
from tests.review_helpers import decisions_with
from tests.test_api_audit import make_decisions, query

ROUTES = ("/v1/decisions", "/v1/decisions/aggregates", "/v1/decisions/export")
TEXT_FILTERS = ("pipeline", "reason_code", "model_name", "client_id", "application_id")


def ids_of(resp: Any) -> list[str]:
    assert resp.status_code == 200, resp.get_json()
    return [d["decision_id"] for d in resp.get_json()["items"]]


def codes(doc: dict[str, Any]) -> set[str]:
    return {r["code"] for r in doc["reason_codes"]}


def review(client: FlaskClient, token: str, decision_id: str, final: str) -> None:
    resp = client.post(
        f"/v1/decisions/{decision_id}/review",
        json={"final_outcome": final, "justification": "Checked the payslips."},
        headers=bearer(token),
    )
    assert resp.status_code == 201, resp.get_json()


# --- hostile input first ------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"min_probability": "1.5"}, "min_probability"),
        ({"max_probability": "-0.1"}, "max_probability"),
        ({"min_probability": "nan"}, "min_probability"),
        ({"min_probability": "0.5; DROP TABLE decisions"}, "min_probability"),
        ({"min_probability": "0.8", "max_probability": "0.2"}, "min_probability"),
        ({"model_version": "1 OR 1=1"}, "model_version"),
        ({"reviewed": "yes"}, "reviewed"),
        ({"overridden": "1"}, "overridden"),
        ({"outcome": "' OR 1=1 --"}, "outcome"),
        ({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "since"),
        ({"reason_code": "R\x00"}, "reason_code"),
        ({"pipeline": "x" * 201}, "pipeline"),
        ({"drop": "table"}, "drop"),
        ({"access_token": "abc"}, "access_token"),
    ],
)
def test_bad_filters_are_400_naming_the_parameter(
    client: FlaskClient, tokens: dict[str, str], route: str, params: dict[str, str], name: str
) -> None:
    if route.endswith("aggregates"):
        params = {**params, "group_by": "outcome"}
    resp = client.get(route, query_string=params, headers=bearer(tokens["auditor"]))
    assert resp.status_code == 400, resp.data[:200]
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json()["errors"][0]["pointer"] == f"/query/{name}"


@pytest.mark.parametrize(
    ("query_string", "name"),
    [
        ("outcome=approve&outcome=decline", "outcome"),
        ("sort=probability;--", "sort"),
        ("order=desc,id", "order"),
        ("limit=501", "limit"),
    ],
)
def test_repeated_and_malformed_sort_parameters_are_400(
    client: FlaskClient, tokens: dict[str, str], query_string: str, name: str
) -> None:
    resp = client.get(f"/v1/decisions?{query_string}", headers=bearer(tokens["auditor"]))
    assert resp.status_code == 400
    assert resp.get_json()["errors"][0]["pointer"] == f"/query/{name}"


def test_sql_ish_values_in_every_text_filter_are_only_values(
    client: FlaskClient, tokens: dict[str, str]
) -> None:
    make_decisions(client, tokens["scorer"], 2)
    auditor = bearer(tokens["auditor"])
    for name in TEXT_FILTERS:
        for value in ("' OR 1=1 --", "x'); DELETE FROM decisions; --", "%", "_"):
            listed = client.get("/v1/decisions", query_string={name: value}, headers=auditor)
            assert ids_of(listed) == []
            agg = client.get(
                "/v1/decisions/aggregates",
                query_string={name: value, "group_by": "reason"},
                headers=auditor,
            )
            assert agg.status_code == 200 and agg.get_json()["totals"]["count"] == 0
    assert len(ids_of(query(client, tokens["auditor"]))) == 2


def test_cursors_are_checked(client: FlaskClient, tokens: dict[str, str]) -> None:
    made = make_decisions(client, tokens["scorer"], 3)
    auditor = tokens["auditor"]
    page = query(client, auditor, sort="probability", limit=1).get_json()
    cursor = page["next_cursor"]
    assert cursor
    tampered = cursor[:-1] + ("0" if cursor[-1] != "0" else "1")
    old_style = encode_cursor(made[0]["decision_id"])
    for bad, params in (
        (tampered, {"sort": "probability"}),
        (cursor, {"sort": "id"}),  # issued for another sort order
        (cursor, {"sort": "probability", "order": "asc"}),
        (old_style, {}),
        ("x" * 1000, {}),
        ("", {}),
    ):
        resp = query(client, auditor, cursor=bad, limit=1, **params)
        assert resp.status_code == 400, bad
        assert resp.get_json()["errors"][0]["pointer"] == "/query/cursor"
    assert query(client, auditor, sort="probability", limit=1, cursor=cursor).status_code == 200


# --- filters ------------------------------------------------------------------------------


def test_reason_codes_are_indexed_with_each_decision_and_filter(
    app: Flask, client: FlaskClient, tokens: dict[str, str]
) -> None:
    made = make_decisions(client, tokens["scorer"], 10)
    with app.extensions["loangate"].engine.connect() as conn:
        indexed = set(conn.execute(sa.text("select decision_id, code from decision_reasons")))
    assert indexed == {(d["decision_id"], c) for d in made for c in codes(d)}
    counts = Counter(c for d in made for c in codes(d))
    assert counts, "the demo model gave no reason codes"
    for code in counts:
        got = ids_of(query(client, tokens["auditor"], reason_code=code))
        assert set(got) == {d["decision_id"] for d in made if code in codes(d)}
    assert ids_of(query(client, tokens["auditor"], reason_code="NO-SUCH-CODE")) == []


def test_probability_range_is_inclusive(client: FlaskClient, tokens: dict[str, str]) -> None:
    made = make_decisions(client, tokens["scorer"], 10)
    probs = sorted(d["probability_of_default"] for d in made)
    low, high = probs[2], probs[6]
    got = ids_of(query(client, tokens["auditor"], min_probability=low, max_probability=high))
    assert set(got) == {
        d["decision_id"] for d in made if low <= d["probability_of_default"] <= high
    }
    assert len(got) == 5
    assert ids_of(query(client, tokens["auditor"], min_probability=1)) == []


def test_reviewed_and_overridden_use_the_override_reports_definition(
    client: FlaskClient, tokens: dict[str, str]
) -> None:
    approved, declined, pending = decisions_with(client, tokens["scorer"], "refer", 3)
    review(client, tokens["reviewer"], approved["decision_id"], "approve")
    review(client, tokens["reviewer"], declined["decision_id"], "decline")
    auditor = tokens["auditor"]
    assert ids_of(query(client, auditor, overridden="true")) == [approved["decision_id"]]
    assert set(ids_of(query(client, auditor, outcome="refer", overridden="false"))) == {
        declined["decision_id"],
        pending["decision_id"],
    }
    upheld = ids_of(query(client, auditor, reviewed="true", overridden="false"))
    assert upheld == [declined["decision_id"]]
    report = client.get("/v1/reviews/report", headers=bearer(auditor)).get_json()
    assert report["totals"]["approved"] == 1  # the report's overrides are the filter's


# --- sorting and cursors ------------------------------------------------------------------


def _key(doc: dict[str, Any], sort: str) -> Any:
    if sort == "probability":
        p = doc["probability_of_default"]
        return (-1.0 if p is None else p, doc["decision_id"])
    if sort == "received_at":
        return (doc["received_at"], doc["decision_id"])
    return doc["decision_id"]


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("id", "desc"),
        ("id", "asc"),
        ("probability", "desc"),
        ("probability", "asc"),
        ("received_at", "desc"),
        ("received_at", "asc"),
    ],
)
def test_sorted_pages_never_repeat_or_skip_while_decisions_arrive(
    client: FlaskClient, tokens: dict[str, str], sort: str, order: str
) -> None:
    made = make_decisions(client, tokens["scorer"], 7)
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3, "sort": sort, "order": order}
        if cursor:
            params["cursor"] = cursor
        page = query(client, tokens["auditor"], **params).get_json()
        seen += page["items"]
        pages += 1
        if pages == 1:
            make_decisions(client, tokens["scorer"], 3, start=100)  # arrive mid-listing
        cursor = page["next_cursor"]
        if cursor is None:
            break
    seen_ids = [d["decision_id"] for d in seen]
    assert len(seen_ids) == len(set(seen_ids)), "a record was repeated"
    keys = [_key(d, sort) for d in seen]
    assert keys == sorted(keys, reverse=order == "desc"), "out of order"
    expected = sorted(made, key=lambda d: _key(d, sort), reverse=order == "desc")
    originals = {d["decision_id"] for d in made}
    assert [i for i in seen_ids if i in originals] == [d["decision_id"] for d in expected]
    if sort == "id" and order == "desc":
        assert seen_ids == [d["decision_id"] for d in expected]  # arrivals land before page 1


# --- aggregates ---------------------------------------------------------------------------


def aggregates(client: FlaskClient, token: str, **params: Any) -> dict[str, Any]:
    resp = client.get("/v1/decisions/aggregates", query_string=params, headers=bearer(token))
    assert resp.status_code == 200, resp.get_json()
    result: dict[str, Any] = resp.get_json()
    return result


def test_aggregates_per_outcome_day_model_pipeline_and_reason(
    client: FlaskClient, tokens: dict[str, str]
) -> None:
    made = make_decisions(client, tokens["scorer"], 12)
    auditor = tokens["auditor"]
    outcomes = Counter(d["outcome"] for d in made)
    approved = outcomes["approve"]
    decided = sum(outcomes[o] for o in ("approve", "refer", "decline"))
    mean = fmean(d["probability_of_default"] for d in made)

    by_outcome = aggregates(client, auditor, group_by="outcome")
    assert {g["outcome"]: g["count"] for g in by_outcome["groups"]} == dict(outcomes)
    totals = by_outcome["totals"]
    assert totals["count"] == 12 and totals["approved"] == approved
    assert totals["approval_rate"] == pytest.approx(approved / decided, abs=1e-6)
    assert totals["mean_probability"] == pytest.approx(mean, abs=1e-6)

    (day,) = aggregates(client, auditor, group_by="day")["groups"]
    assert day["day"] == datetime.now(UTC).date().isoformat() and day["count"] == 12
    (model,) = aggregates(client, auditor, group_by="model")["groups"]
    assert (model["model_name"], model["model_version"], model["count"]) == (
        "german-credit",
        1,
        12,
    )
    (pipeline,) = aggregates(client, auditor, group_by="pipeline")["groups"]
    assert pipeline["pipeline"] == "credit-risk"
    assert pipeline["mean_probability"] == pytest.approx(mean, abs=1e-6)

    by_reason = aggregates(client, auditor, group_by="reason")
    expected = Counter(c for d in made for c in codes(d))
    assert {g["reason_code"]: g["count"] for g in by_reason["groups"]} == dict(expected)
    assert by_reason["totals"]["count"] == 12  # each record once in the totals

    some = next(iter(outcomes))
    only = aggregates(client, auditor, group_by="outcome", outcome=some)
    assert [g["outcome"] for g in only["groups"]] == [some]


@pytest.mark.parametrize("group_by", [None, "month", "outcome; DROP TABLE decisions"])
def test_aggregates_need_a_known_group(
    client: FlaskClient, tokens: dict[str, str], group_by: str | None
) -> None:
    params = {} if group_by is None else {"group_by": group_by}
    resp = client.get(
        "/v1/decisions/aggregates", query_string=params, headers=bearer(tokens["auditor"])
    )
    assert resp.status_code == 400
    assert resp.get_json()["errors"][0]["pointer"] == "/query/group_by"


def test_batch_runs_index_reason_codes_in_the_same_transaction(app: Flask, tmp_path: Path) -> None:
    path = tmp_path / "apps.csv"
    pd.DataFrame.from_records(german_rows()[:40]).to_csv(path, index=False)
    state = app.extensions["loangate"]
    score_file(
        state.extras["pipelines"]["credit-risk"],
        state.engine,
        path,
        fmt="csv",
        client_id="nightly",
        output=tmp_path / "out.csv",
        chunk_size=16,
        decision_log=state.extras["decision_log"],
        protect=state.extras["personal_data"].protect_many,  # as `loangate batch` runs it
    )
    with state.engine.connect() as conn:
        documents = conn.execute(sa.text("select document from decisions")).scalars().all()
        indexed = set(conn.execute(sa.text("select decision_id, code from decision_reasons")))
    expected = {
        (doc["decision_id"], code)
        for doc in map(orjson.loads, documents)
        for code in {r["code"] for r in doc["reason_codes"]}
    }
    assert len(documents) == 40 and expected and indexed == expected
