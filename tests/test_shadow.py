"""Shadow scoring: challengers score live requests off the response path; the shadow
comparison and the business-impact report read what they logged."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from gateway import create_app
from gateway.context import DecisionContext
from gateway.registry import ModelRegistry
from gateway.shadow import ShadowRunner
from gateway.training import train
from tests.conftest import MODEL_NAME, bearer, fetch_token, gateway_overrides, register_demo_model
from tests.helpers import applicants


@pytest.fixture(scope="module")
def challenger_model() -> Any:
    return train(seed=7)


@pytest.fixture
def shadow_app(db_url: str, tmp_path: Path, trained_model: Any) -> Iterator[Flask]:
    """The demo gateway with the champion's challenger in shadow on credit-risk."""
    models_dir = tmp_path / "models"
    register_demo_model(db_url, models_dir, trained_model)
    config = gateway_overrides(db_url, models_dir)
    config["pipelines"] = {
        "credit-risk": {"shadow": [{"model": MODEL_NAME, "stage": "challenger"}]}
    }
    application = create_app(config, instance_path=tmp_path / "instance")
    yield application
    application.extensions["loangate"].engine.dispose()


def _extras(app: Flask) -> dict[str, Any]:
    extras: dict[str, Any] = app.extensions["loangate"].extras
    return extras


def _shadow_rows(app: Flask) -> list[Any]:
    with app.extensions["loangate"].engine.connect() as conn:
        return list(conn.execute(sa.text("select * from shadow_scores order by decision_id")))


def _decide_all(client: FlaskClient, token: str, count: int) -> list[dict[str, Any]]:
    out = []
    for i, applicant in enumerate(applicants()[:count]):
        resp = client.post(
            "/v1/pipelines/credit-risk/decisions",
            json={"application_id": f"LN-{i}", "applicant": applicant},
            headers=bearer(token),
        )
        assert resp.status_code == 201, resp.get_json()
        out.append(resp.get_json())
    return out


def test_a_challenger_scores_in_shadow_once_promoted_to_the_stage(
    shadow_app: Flask, challenger_model: Any
) -> None:
    client = shadow_app.test_client()
    scorer = fetch_token(shadow_app, client, "decisions:create")
    runner: ShadowRunner = _extras(shadow_app)["decisions"].shadows
    _decide_all(client, scorer, 5)
    assert runner.flush()
    assert _shadow_rows(shadow_app) == []  # no challenger yet: the shadow is idle

    registry: ModelRegistry = _extras(shadow_app)["registry"]
    registry.register(
        MODEL_NAME,
        challenger_model.estimator,
        challenger_model.metadata,
        kind="logistic",
        stage="challenger",
        created_by="tests",
    )
    registry.followers.refresh()
    decided = _decide_all(client, scorer, 40)
    assert runner.flush()
    rows = {r.decision_id: r for r in _shadow_rows(shadow_app)}
    assert set(rows) == {d["decision_id"] for d in decided}
    policy = _extras(shadow_app)["pipelines"]["credit-risk"].policy
    for doc in decided:
        row = rows[doc["decision_id"]]
        assert row.model_version == 2 and doc["model"]["version"] == 1
        assert row.champion_probability == doc["probability_of_default"]
        assert row.champion_outcome == doc["outcome"]
        assert 0.0 < row.probability < 1.0 and row.probability != row.champion_probability
        if row.probability < policy.approve_below and not doc["policy"]["rule_hits"]:
            assert row.outcome == "approve"
        if row.probability >= policy.decline_at:
            assert row.outcome == "decline"


def test_shadow_report_and_business_impact(
    shadow_app: Flask, challenger_model: Any, tmp_path: Path
) -> None:
    client = shadow_app.test_client()
    registry: ModelRegistry = _extras(shadow_app)["registry"]
    registry.register(
        MODEL_NAME,
        challenger_model.estimator,
        challenger_model.metadata,
        kind="logistic",
        stage="challenger",
        created_by="tests",
    )
    registry.followers.refresh()
    scorer = fetch_token(shadow_app, client, "decisions:create")
    auditor = fetch_token(shadow_app, client, "monitoring:read")
    lender = fetch_token(shadow_app, client, "outcomes:write")
    decided = _decide_all(client, scorer, 60)
    assert _extras(shadow_app)["decisions"].shadows.flush()
    approved = [d for d in decided if d["outcome"] == "approve"]
    assert len(approved) >= 4
    defaulted = {d["decision_id"] for d in approved[::3]}
    for doc in approved:
        status = "defaulted" if doc["decision_id"] in defaulted else "repaid"
        resp = client.post(
            f"/v1/decisions/{doc['decision_id']}/outcome",
            json={"status": status, "date": date.today().isoformat()},
            headers=bearer(lender),
        )
        assert resp.status_code == 201, resp.get_json()

    report = client.get("/v1/monitoring/shadow?pipeline=credit-risk", headers=bearer(auditor))
    assert report.status_code == 200
    (entry,) = report.get_json()["items"]
    assert entry["decisions"] == 60 and entry["model"] == {"name": MODEL_NAME, "version": 2}
    assert sum(n for cells in entry["outcomes"].values() for n in cells.values()) == 60
    champion_approved = sum(entry["outcomes"].get("approve", {}).values())
    assert entry["champion_approval_rate"] == pytest.approx(champion_approved / 60)
    assert entry["champion_approval_rate"] == pytest.approx(len(approved) / 60)

    impact = client.get("/v1/monitoring/impact", headers=bearer(auditor)).get_json()
    (model,) = impact["models"]
    assert model["decisions"] == 60 and model["approved_with_outcome"] == len(approved)
    assert model["bad_rate_among_approved"] == pytest.approx(len(defaulted) / len(approved))
    (baseline,) = impact["baselines"]
    assert baseline["champion_bad_rate_same_window"] == model["bad_rate_among_approved"]
    shadow_rows = {r.decision_id: r for r in _shadow_rows(shadow_app)}
    shared = [d for d in approved if shadow_rows[d["decision_id"]].outcome == "approve"]
    assert baseline["shared_approvals_with_outcome"] == len(shared)
    if shared:
        bad = sum(d["decision_id"] in defaulted for d in shared)
        assert baseline["bad_rate_on_shared_approvals"] == pytest.approx(bad / len(shared))

    bad_query = client.get("/v1/monitoring/impact?since=yesterday", headers=bearer(auditor))
    assert bad_query.status_code == 400 and "since" in bad_query.get_json()["detail"]
    unknown = client.get("/v1/monitoring/shadow?model=x", headers=bearer(auditor))
    assert unknown.status_code == 400


def test_a_full_shadow_queue_drops_samples_instead_of_waiting(
    engine: sa.Engine, get_token: Callable[..., str] | None = None
) -> None:
    runner = ShadowRunner(engine, queue_size=2)
    runner._thread = object()  # type: ignore[assignment]  # no consumer: the queue fills up
    ctx: Any = DecisionContext.__new__(DecisionContext)
    for _ in range(5):
        runner.submit(object(), ctx)
    assert runner.dropped == 3
