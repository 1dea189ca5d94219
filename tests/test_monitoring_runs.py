"""Monitoring runs end to end on SQLite and PostgreSQL: performance on recorded outcomes,
fairness across protected groups, the routes that serve results, and the CLI."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from gateway.cli import main as cli
from gateway.monitoring.cli import ALERT_EXIT
from gateway.monitoring.queries import Window
from gateway.outcomes import OutcomeRow
from gateway.tables import DecisionMonitoring
from tests.conftest import bearer
from tests.monitoring_helpers import PIPELINE, log_rows, sample

# --- performance ----------------------------------------------------------------------------


def _record_outcomes(app: Flask, docs: list[dict[str, Any]], informative: bool, seed: int) -> int:
    """Outcomes for the approved decisions: drawn from the model's own probability
    (``informative``), or at random whatever the score."""
    rng = random.Random(seed)
    approved = [d for d in docs if d["outcome"] == "approve"]
    rows = []
    for d in approved:
        p = d["probability_of_default"] if informative else 0.3
        status = "defaulted" if rng.random() < p else "repaid"
        rows.append(OutcomeRow(d["decision_id"], status, date.today()))
    result = app.extensions["loangate"].extras["outcomes"].record(rows, "tests")
    assert not isinstance(result, list), result
    return len(rows)


def test_performance_on_outcomes_that_follow_the_score(app: Flask) -> None:
    docs = log_rows(app, sample(3000, seed=11))
    n = _record_outcomes(app, docs, informative=True, seed=3)
    monitor = app.extensions["loangate"].extras["monitor"]
    (outcome,) = monitor.run(["performance"], Window(last=3000), PIPELINE)
    results = outcome.run["results"]
    assert results["outcomes"] == n > 200
    assert 0.55 < results["auc"] <= 1.0 and 0 <= results["brier"] < 0.25
    assert results["training"]["auc"] is not None
    bands = results["bands"]
    assert sum(b["count"] for b in bands) == n
    assert all(b["mean_probability"] is None or 0 <= b["mean_probability"] <= 1 for b in bands)


def test_performance_alert_when_the_score_stops_ranking(app: Flask) -> None:
    docs = log_rows(app, sample(3000, seed=12))
    _record_outcomes(app, docs, informative=False, seed=4)
    monitor = app.extensions["loangate"].extras["monitor"]
    (outcome,) = monitor.run(["performance"], Window(last=3000), PIPELINE)
    results = outcome.run["results"]
    assert results["auc_drop"] > 0.05
    assert ("model", "auc_drop", "alert") in {
        (a.subject, a.statistic, a.severity) for a in outcome.alerts
    }


def test_performance_without_outcomes_is_not_graded(app: Flask) -> None:
    log_rows(app, sample(600, seed=13))
    monitor = app.extensions["loangate"].extras["monitor"]
    (outcome,) = monitor.run(["performance"], Window(last=600), PIPELINE)
    assert outcome.run["results"]["outcomes"] == 0
    assert outcome.run["results"]["auc"] is None and outcome.alerts == []


# --- fairness -------------------------------------------------------------------------------


def _monitoring_rows(app: Flask, groups: dict[int, tuple[int, int]]) -> None:
    """Monitoring rows straight into the table: per code of ``g0``, (approved, declined)."""
    monitor = app.extensions["loangate"].extras["monitor"]
    (scope,) = monitor.scopes(PIPELINE)
    now = datetime.now(UTC)
    rows = []
    i = 0
    for code, (approved, declined) in groups.items():
        for outcome in ["approve"] * approved + ["decline"] * declined:
            i += 1
            rows.append(
                {
                    "decision_id": f"{i:026d}",
                    "pipeline": PIPELINE,
                    "model_name": scope.model_name,
                    "model_version": scope.model_version,
                    "received_at": now - timedelta(seconds=i),
                    "status": "decided",
                    "outcome": outcome,
                    "probability": 0.2,
                    "g0": code,
                    "g1": 0,
                }
            )
    with app.extensions["loangate"].engine.begin() as conn:
        conn.execute(sa.insert(DecisionMonitoring), rows)


def test_four_fifths_rule_alert(app: Flask) -> None:
    # group 0 approved 60 %, group 1 42 % (ratio 0.7); group 2 too small to grade
    _monitoring_rows(app, {0: (180, 120), 1: (126, 174), 2: (1, 30)})
    monitor = app.extensions["loangate"].extras["monitor"]
    (outcome,) = monitor.run(["fairness"], Window(last=10000), PIPELINE)
    results = outcome.run["results"]
    attrs = {a["attribute"]: a for a in results["attributes"]}
    assert set(attrs) == {"personal_status_and_sex", "foreign_worker"}
    groups = attrs["personal_status_and_sex"]["groups"]
    assert [g["graded"] for g in groups] == [True, True, False]
    assert groups[1]["ratio"] == pytest.approx(0.7)
    subjects = [(a.subject, a.statistic) for a in outcome.alerts]
    assert len(subjects) == 1 and subjects[0][1] == "approval_ratio"
    assert subjects[0][0].startswith("personal_status_and_sex=")


def test_fairness_on_logged_decisions_has_every_protected_attribute(app: Flask) -> None:
    log_rows(app, sample(800, seed=14))
    monitor = app.extensions["loangate"].extras["monitor"]
    (outcome,) = monitor.run(["fairness"], Window(last=800), PIPELINE)
    attrs = {a["attribute"]: a for a in outcome.run["results"]["attributes"]}
    decided = sum(g["decided"] for g in attrs["foreign_worker"]["groups"])
    assert decided == 800
    assert {g["group"] for g in attrs["foreign_worker"]["groups"]} <= {"yes", "no"}


def test_small_windows_are_reported_but_never_alerted(app: Flask) -> None:
    rows = sample(100, seed=15)
    for row in rows:
        row["purpose"] = "vacation"
    log_rows(app, rows)
    monitor = app.extensions["loangate"].extras["monitor"]
    (outcome,) = monitor.run(["drift"], Window(last=100), PIPELINE)
    assert "not graded" in outcome.run["results"]["note"] and outcome.alerts == []


# --- the routes ------------------------------------------------------------------------------


def test_routes_serve_the_latest_runs(app: Flask, client: FlaskClient, get_token: Any) -> None:
    log_rows(app, sample(600, seed=16))
    monitor = app.extensions["loangate"].extras["monitor"]
    first = monitor.run(["drift"], Window(last=600), PIPELINE)[0].run
    second = monitor.run(["drift", "fairness"], Window(last=600), PIPELINE)
    token = get_token("monitoring:read")

    resp = client.get("/v1/monitoring/drift", headers=bearer(token))
    assert resp.status_code == 200
    items = resp.get_json()["items"]
    assert [i["id"] for i in items] == [second[0].run["id"]]
    assert items[0]["results"]["features"] and items[0]["window"]["rows"] == 600

    resp = client.get(f"/v1/monitoring/drift?run={first['id']}", headers=bearer(token))
    assert resp.status_code == 200 and resp.get_json()["id"] == first["id"]
    resp = client.get("/v1/monitoring/fairness?pipeline=credit-risk", headers=bearer(token))
    assert [i["kind"] for i in resp.get_json()["items"]] == ["fairness"]
    resp = client.get("/v1/monitoring/performance", headers=bearer(token))
    assert resp.status_code == 200 and resp.get_json()["items"] == []


@pytest.mark.parametrize(
    "query, status",
    [
        ("?run=not-an-id", 400),
        ("?run=" + "0" * 26, 404),
        ("?verbose=1", 400),
        ("?pipeline=" + "x" * 101, 400),
        ("?pipeline=", 400),
    ],
)
def test_routes_refuse_bad_queries(
    client: FlaskClient, get_token: Any, query: str, status: int
) -> None:
    resp = client.get("/v1/monitoring/drift" + query, headers=bearer(get_token("monitoring:read")))
    assert resp.status_code == status
    assert resp.mimetype == "application/problem+json"


def test_a_drift_run_is_not_a_fairness_run(app: Flask, client: FlaskClient, get_token: Any) -> None:
    log_rows(app, sample(50, seed=17))
    run = app.extensions["loangate"].extras["monitor"].run(["drift"], Window(last=50))[0].run
    resp = client.get(
        f"/v1/monitoring/fairness?run={run['id']}", headers=bearer(get_token("monitoring:read"))
    )
    assert resp.status_code == 404


def test_routes_need_the_monitoring_scope(client: FlaskClient, get_token: Any) -> None:
    assert client.get("/v1/monitoring/drift").status_code == 401
    other = bearer(get_token("decisions:read"))
    assert client.get("/v1/monitoring/drift", headers=other).status_code == 403


def test_routes_are_documented(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    for kind in ("drift", "performance", "fairness"):
        assert paths[f"/v1/monitoring/{kind}"]["get"]["security"] == [
            {"bearer": ["monitoring:read"]}
        ]


# --- the command line --------------------------------------------------------------------------


@pytest.fixture
def cli_env(app: Flask, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Flask:
    monkeypatch.setenv("LOANGATE_DATABASE__URL", db_url)
    monkeypatch.setenv("LOANGATE_MODELS__DIR", str(tmp_path / "models"))
    monkeypatch.setenv("LOANGATE_INSTANCE", str(tmp_path / "instance"))
    return app


def test_cli_run_exit_status_show_and_report(cli_env: Flask, tmp_path: Path) -> None:
    log_rows(cli_env, sample(600, seed=18))
    runner = CliRunner()
    calm = runner.invoke(cli, ["monitor", "run", "--kind", "drift", "--window", "600"])
    assert calm.exit_code == 0, calm.output
    assert "drift" in calm.output and "0 alert(s)" in calm.output

    shifted = sample(600, seed=19)
    for row in shifted:
        row["purpose"] = "vacation"
    log_rows(cli_env, shifted)
    alarmed = runner.invoke(cli, ["monitor", "run", "--kind", "drift", "--window", "600"])
    assert alarmed.exit_code == ALERT_EXIT, alarmed.output
    assert "purpose unseen_rate=1" in alarmed.output
    # --retrain answers the alert with a challenger, when there are labelled decisions
    retrained = runner.invoke(
        cli, ["monitor", "run", "--kind", "drift", "--window", "600", "--retrain"]
    )
    assert retrained.exit_code == ALERT_EXIT, retrained.output
    assert "retraining german-credit skipped: 0 labelled decisions" in retrained.output

    shown = runner.invoke(cli, ["monitor", "show", "--kind", "drift"])
    assert shown.exit_code == 0 and '"purpose"' in shown.output

    out = tmp_path / "report.html"
    made = runner.invoke(cli, ["monitor", "report", "--html", str(out)])
    assert made.exit_code == 0, made.output
    html = out.read_text()
    assert (
        "<svg" in html and "purpose" in html and "http" not in html.replace("http://www.w3.org", "")
    )


@pytest.mark.parametrize(
    "args",
    [
        ["monitor", "run", "--kind", "everything"],
        ["monitor", "run", "--window", "0"],
        ["monitor", "run", "--since", "yesterday"],
        ["monitor", "run", "--pipeline", "no-such-pipeline"],
    ],
)
def test_cli_refuses_bad_arguments(cli_env: Flask, args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output


# --- the request path ----------------------------------------------------------------------


def _monitoring_row(app: Flask, decision_id: str) -> Any:
    with app.extensions["loangate"].engine.connect() as conn:
        return conn.execute(
            sa.select(DecisionMonitoring).where(DecisionMonitoring.c.decision_id == decision_id)
        ).first()


def test_a_rest_decision_gets_its_row_binned_from_clear_values(
    app: Flask, client: FlaskClient, get_token: Any
) -> None:
    from tests.helpers import body

    token = get_token("decisions:create")
    resp = client.post(f"/v1/pipelines/{PIPELINE}/decisions", json=body(1), headers=bearer(token))
    assert resp.status_code == 201, resp.get_json()
    decision_id = resp.get_json()["decision_id"]
    stored = app.extensions["loangate"].extras["decision_log"].get(decision_id).parsed()
    assert isinstance(stored["features"]["age_in_years"], dict)  # sealed in the log
    row = _monitoring_row(app, decision_id)
    monitor = app.extensions["loangate"].extras["monitor"]
    layout = monitor.rows.layout("german-credit", 1)
    age = layout.features_by_name["age_in_years"]
    assert row.status == "decided" and row.probability == resp.get_json()["probability_of_default"]
    assert getattr(row, age.column) == age.bin(body(1)["applicant"]["age_in_years"]) >= 0
    assert row.g0 >= 0 and row.g1 >= 0

    # a rejected request (an unseen purpose) is binned from what the caller sent
    resp = client.post(
        f"/v1/pipelines/{PIPELINE}/decisions",
        json=body(2, purpose="vacation", age_in_years=None),
        headers=bearer(token),
    )
    assert resp.status_code == 422
    row = _monitoring_row(app, resp.get_json()["decision_id"])
    purpose = layout.features_by_name["purpose"]
    derived = layout.features_by_name["credit_per_month"]
    assert row.status == "rejected" and row.probability is None and row.score_bin is None
    assert getattr(row, purpose.column) == -2
    assert getattr(row, age.column) == -1
    assert getattr(row, derived.column) == -3


def test_a_failing_monitoring_row_never_fails_the_decision(
    app: Flask, client: FlaskClient, get_token: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import body

    rows = app.extensions["loangate"].extras["monitor"].rows

    def broken(*_args: Any) -> Any:
        raise RuntimeError("registry unavailable")

    monkeypatch.setattr(rows, "layout", broken)
    token = get_token("decisions:create")
    resp = client.post(f"/v1/pipelines/{PIPELINE}/decisions", json=body(1), headers=bearer(token))
    assert resp.status_code == 201
    assert _monitoring_row(app, resp.get_json()["decision_id"]) is None


# --- windows ---------------------------------------------------------------------------------


def test_windows_by_count_with_ties_and_by_time(app: Flask) -> None:
    # one chunk of the batch path: 1,200 decisions received at the same instant
    log_rows(app, sample(1200, seed=20), chunk=1200)
    monitor = app.extensions["loangate"].extras["monitor"]
    now = datetime.now(UTC)

    def rows(window: Window) -> int:
        (outcome,) = monitor.run(["drift"], window, PIPELINE)
        return int(outcome.run["window"]["rows"])

    assert rows(Window(last=700)) == 700  # ties on received_at broken by decision id
    assert rows(Window(last=5000)) == 1200
    assert rows(Window(since=now - timedelta(hours=1))) == 1200
    assert rows(Window(since=now + timedelta(hours=1))) == 0
    assert rows(Window(until=now - timedelta(hours=1))) == 0
    assert rows(Window(last=10, since=now - timedelta(hours=1), until=now + timedelta(1))) == 10
