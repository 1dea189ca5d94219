"""Acceptance: a deliberate shift is flagged on exactly the shifted features, and a local
webhook receiver gets a correctly signed alert (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from gateway import create_app
from gateway.monitoring.queries import Window
from gateway.tables import DecisionMonitoring
from tests.conftest import bearer, fetch_token, gateway_overrides, register_demo_model
from tests.monitoring_helpers import PIPELINE, log_rows, sample, shifted, webhook_receiver

SECRET = "s3cr3t-webhook-key"
#: What the shift touches: credit_amount, and credit_per_month derived from it (a derived
#: feature drifts with its input), the purpose (an unseen category) and the age (missing).
SHIFTED = {"credit_amount", "credit_per_month", "purpose", "age_in_years"}


@pytest.fixture
def receiver() -> Iterator[tuple[str, Any]]:
    with webhook_receiver(SECRET.encode()) as found:
        yield found


@pytest.fixture
def monitored_app(
    db_url: str,
    tmp_path: Path,
    trained_model: Any,
    receiver: tuple[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Flask]:
    monkeypatch.setenv("LOANGATE_TEST_WEBHOOK_SECRET", SECRET)
    models_dir = tmp_path / "models"
    register_demo_model(db_url, models_dir, trained_model)
    overrides = gateway_overrides(db_url, models_dir)
    overrides["monitoring"] = {
        "alerts": {
            "webhooks": [
                {
                    "name": "ops",
                    "url": receiver[0],
                    "secret_env": "LOANGATE_TEST_WEBHOOK_SECRET",
                    "backoff_ms": 10,
                }
            ]
        }
    }
    app = create_app(overrides, instance_path=tmp_path / "instance")
    yield app
    app.extensions["loangate"].engine.dispose()


def test_shift_is_flagged_on_exactly_the_shifted_features(
    monitored_app: Flask, receiver: tuple[str, Any]
) -> None:
    log_rows(monitored_app, sample(2000, seed=1))  # the baseline: unchanged applicants
    shifted_docs = log_rows(monitored_app, shifted(10000, seed=2))
    # the unseen purpose is rejected by the validator, and still logged and binned
    assert any(d["status"] == "rejected" for d in shifted_docs)
    engine = monitored_app.extensions["loangate"].engine
    with engine.connect() as conn:
        logged = conn.execute(sa.select(sa.func.count()).select_from(DecisionMonitoring))
        assert logged.scalar_one() == 12000

    monitor = monitored_app.extensions["loangate"].extras["monitor"]
    (outcome,) = monitor.run(["drift"], Window(last=10000), PIPELINE)

    results = outcome.run["results"]
    assert outcome.run["window"]["rows"] == 10000
    flagged = set(results["drifted"]) - {"score"}  # the score may move with the amounts
    assert flagged == SHIFTED, results["drifted"]
    by_name = {f["feature"]: f for f in results["features"]}
    assert by_name["purpose"]["unseen_rate"] > 0.15
    assert by_name["age_in_years"]["null_rate_delta"] > 0.25
    assert by_name["credit_amount"]["psi"] > 0.2
    untouched = set(by_name) - SHIFTED
    assert untouched and all(by_name[f]["status"] != "alert" for f in untouched)

    received = receiver[1]
    assert len(received.posts) == 1
    post = received.posts[0]
    assert post["valid"], "the receiver could not verify the signature"
    subjects = {a["subject"] for a in post["body"]["alerts"]}
    assert subjects - {"score"} == SHIFTED
    assert post["body"]["run"]["id"] == outcome.run["id"]
    assert [d.delivered for d in outcome.deliveries] == [True]

    # and the stored run is what the API serves
    client = monitored_app.test_client()
    token = fetch_token(monitored_app, client, "monitoring:read")
    served = client.get("/v1/monitoring/drift", headers=bearer(token)).get_json()["items"]
    assert [r["id"] for r in served] == [outcome.run["id"]]
    assert set(served[0]["results"]["drifted"]) - {"score"} == SHIFTED


def test_unshifted_window_raises_no_alert(monitored_app: Flask, receiver: tuple[str, Any]) -> None:
    log_rows(monitored_app, sample(3000, seed=5))
    monitor = monitored_app.extensions["loangate"].extras["monitor"]
    (outcome,) = monitor.run(["drift"], Window(last=3000), PIPELINE)
    assert outcome.run["results"]["drifted"] == []
    assert outcome.alerts == []
    assert receiver[1].posts == []
