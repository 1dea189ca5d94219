"""Exports (CSV, Parquet, streamed) and the CLI equivalents, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from gateway import db, decision_export
from gateway.access_trail import os_user
from gateway.cli import main as cli
from gateway.decision_export import decisions
from tests.conftest import bearer
from tests.helpers import applicants
from tests.integrity_helpers import synthetic_row
from tests.review_helpers import decisions_with
from tests.servers import running_server
from tests.test_api_audit import make_decisions

FACTS = [name for name, _ in decision_export.FACT_COLUMNS]


def export(client: FlaskClient, token: str, **params: Any) -> Any:
    resp = client.get("/v1/decisions/export", query_string=params, headers=bearer(token))
    assert resp.status_code == 200, resp.get_json()
    return resp


def reviewed_set(client: FlaskClient, tokens: dict[str, str]) -> list[dict[str, Any]]:
    """Six decisions, one of them a referral a reviewer approved (an override)."""
    made = make_decisions(client, tokens["scorer"], 5)
    (referred,) = decisions_with(client, tokens["scorer"], "refer")
    resp = client.post(
        f"/v1/decisions/{referred['decision_id']}/review",
        json={"final_outcome": "approve", "justification": "Guarantor confirmed."},
        headers=bearer(tokens["reviewer"]),
    )
    assert resp.status_code == 201
    return [*made, referred]


def test_parquet_export_has_facts_reasons_and_review_but_no_application(
    client: FlaskClient, tokens: dict[str, str]
) -> None:
    made = reviewed_set(client, tokens)
    listed = client.get("/v1/decisions?limit=500", headers=bearer(tokens["auditor"])).get_json()
    resp = export(client, tokens["auditor"], format="parquet")
    assert resp.mimetype == "application/vnd.apache.parquet"
    assert resp.headers["Cache-Control"] == "no-store"
    table = pq.read_table(io.BytesIO(resp.data))
    assert table.column_names == FACTS  # no application.* column by default
    rows = {r["decision_id"]: r for r in table.to_pylist()}
    assert list(rows) == [d["decision_id"] for d in listed["items"]]  # newest first
    for doc in made:
        row = rows[doc["decision_id"]]
        assert row["reason_codes"] == [r["code"] for r in doc["reason_codes"]]
        assert row["outcome"] == doc["outcome"]
        assert row["probability_of_default"] == pytest.approx(doc["probability_of_default"])
        assert row["model_version"] == 1 and row["received_at"].tzinfo is not None
    referred = rows[made[-1]["decision_id"]]
    assert referred["review_final_outcome"] == "approve" and referred["overridden"] is True
    assert referred["reviewer"].startswith("lgc_") and referred["reviewed_at"] is not None
    assert rows[made[0]["decision_id"]]["overridden"] is None  # never reviewed


def test_csv_export_follows_filters_and_sort(client: FlaskClient, tokens: dict[str, str]) -> None:
    made = reviewed_set(client, tokens)
    resp = export(client, tokens["auditor"], sort="probability", order="asc")
    assert resp.mimetype == "text/csv"
    reader = csv.DictReader(io.StringIO(resp.data.decode()))
    assert reader.fieldnames == FACTS
    rows = list(reader)
    probs = [float(r["probability_of_default"]) for r in rows]
    assert probs == sorted(probs) and len(rows) >= len(made)
    by_id = {r["decision_id"]: r for r in rows}
    for doc in made:
        assert by_id[doc["decision_id"]]["reason_codes"] == ";".join(
            r["code"] for r in doc["reason_codes"]
        )
    only = export(client, tokens["auditor"], overridden="true", format="csv")
    (row,) = list(csv.DictReader(io.StringIO(only.data.decode())))
    assert row["decision_id"] == made[-1]["decision_id"] and row["overridden"] == "True"
    text = resp.data.decode()
    for i in range(5):  # the applicants make_decisions sent: none of their details go out
        for field in ("personal_status_and_sex", "job", "purpose"):
            assert applicants()[i][field] not in text
            assert field not in text
    empty = export(client, tokens["auditor"], pipeline="' OR 1=1 --")
    assert empty.data.decode().splitlines() == [",".join(FACTS)]


@pytest.mark.parametrize(("fmt", "bad"), [("xlsx", "format"), ("csv", "cursor")])
def test_export_refuses_unknown_formats_and_paging(
    client: FlaskClient, tokens: dict[str, str], fmt: str, bad: str
) -> None:
    params = {"format": fmt} if bad == "format" else {"format": fmt, "cursor": "abc"}
    resp = client.get(
        "/v1/decisions/export", query_string=params, headers=bearer(tokens["auditor"])
    )
    assert resp.status_code == 400
    assert resp.get_json()["errors"][0]["pointer"] == f"/query/{bad}"


def test_export_streams_one_row_group_per_batch(
    client: FlaskClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_decisions(client, tokens["scorer"], 5)
    monkeypatch.setattr(decision_export, "BATCH_ROWS", 2)
    resp = client.get(
        "/v1/decisions/export?format=parquet",
        headers=bearer(tokens["auditor"]),
        buffered=False,
    )
    assert resp.status_code == 200 and resp.is_streamed
    chunks = [c for c in resp.response if c]
    assert len(chunks) >= 3  # handed on batch by batch, not built whole
    parquet = pq.ParquetFile(io.BytesIO(b"".join(chunks)))
    assert parquet.metadata.num_rows == 5 and parquet.num_row_groups == 3
    resp.close()


# --- the CLI ------------------------------------------------------------------------------


@pytest.fixture
def run(app: Flask, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LOANGATE_DATABASE__URL", db_url)
    monkeypatch.setenv("LOANGATE_MODELS__DIR", str(tmp_path / "models"))
    monkeypatch.setenv("LOANGATE_INSTANCE", str(tmp_path / "instance"))

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    return invoke


def test_cli_lists_aggregates_exports_and_shows_the_trail(
    client: FlaskClient, tokens: dict[str, str], run: Any, tmp_path: Path
) -> None:
    made = make_decisions(client, tokens["scorer"], 4)
    newest_first = [d["decision_id"] for d in reversed(made)]

    listed = run("decisions", "list", "--json", "--limit", "3")
    assert listed.exit_code == 0, listed.output
    lines = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [d["decision_id"] for d in lines] == newest_first[:3]
    assert "--cursor" in listed.stderr
    table = run("decisions", "list", "--sort", "probability", "--order", "asc")
    assert table.exit_code == 0 and made[0]["decision_id"] in table.stdout

    agg = run("decisions", "aggregate", "--group-by", "outcome", "--json")
    assert agg.exit_code == 0, agg.output
    assert json.loads(agg.stdout)["totals"]["count"] == 4
    assert run("decisions", "aggregate", "--group-by", "day").exit_code == 0

    out = tmp_path / "d.parquet"
    exported = run("decisions", "export", "--format", "parquet", "--output", str(out))
    assert exported.exit_code == 0, exported.output
    assert pq.read_table(out).column("decision_id").to_pylist() == newest_first

    trail = run("audit", "trail", "--channel", "cli", "--json")
    entries = [json.loads(line) for line in trail.stdout.splitlines()]
    assert [e["action"] for e in entries] == [
        "loangate decisions export",
        "loangate decisions aggregate",
        "loangate decisions aggregate",
        "loangate decisions list",
        "loangate decisions list",
    ]
    assert {e["actor"] for e in entries} == {os_user()}
    assert entries[-1]["params"] == {"limit": 3} and entries[-1]["result_count"] == 3
    assert entries[0]["params"] == {"format": "parquet"}


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["decisions", "list", "--min-probability", "2"], "--min-probability"),
        (["decisions", "list", "--reviewed", "maybe"], "--reviewed"),
        (["decisions", "list", "--cursor", "forged"], "--cursor"),
        (
            ["decisions", "aggregate", "--group-by", "day", "--model-version", "x"],
            "--model-version",
        ),
        (["decisions", "export", "--output", "-", "--since", "yesterday"], "--since"),
        (["audit", "trail", "--limit", "0"], "--limit"),
    ],
)
def test_cli_names_the_bad_option(run: Any, args: list[str], option: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert option in result.output


def test_export_streams_through_gunicorn_in_row_groups(
    db_url: str, tmp_path: Path, trained_model: Any
) -> None:
    rows = 2 * decision_export.BATCH_ROWS + 7
    engine = db.make_engine(db_url)
    with engine.begin() as conn:  # one bulk insert: as if logged over the months
        conn.execute(sa.insert(decisions), [synthetic_row(i) for i in range(rows)])
    engine.dispose()
    with running_server(db_url, tmp_path, trained_model) as srv:
        token = srv.token("decisions:read")
        with requests.get(
            f"{srv.base}/v1/decisions/export",
            params={"format": "parquet", "outcome": "approve"},
            headers=bearer(token),
            stream=True,
            timeout=120,
        ) as resp:
            assert resp.status_code == 200
            assert "Content-Length" not in resp.headers  # streamed, not built whole
            body = b"".join(resp.iter_content(1 << 16))
        approvals = sum(synthetic_row(i)["outcome"] == "approve" for i in range(rows))
        parquet = pq.ParquetFile(io.BytesIO(body))
        assert parquet.metadata.num_rows == approvals
        assert parquet.num_row_groups == -(-approvals // decision_export.BATCH_ROWS)
        trail = requests.get(
            f"{srv.base}/v1/audit/access-trail",
            headers=bearer(srv.token("audit:read")),
            timeout=30,
        ).json()["items"]
        assert [(e["action"], e["params"]) for e in trail] == [
            ("GET /v1/decisions/export", {"format": "parquet", "outcome": "approve"})
        ]
