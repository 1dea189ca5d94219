"""Prometheus metrics: request, stage, outcome and model series, summed across workers."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from gateway import create_app
from tests.conftest import bearer, fetch_token, gateway_overrides, register_demo_model
from tests.helpers import body
from tests.servers import running_server


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of the series ``name{labels}`` in an exposition (0 if absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name) : line.index("}") + 1]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_decisions_stages_and_show_the_model(
    app: Flask, client: FlaskClient, get_token: Callable[..., str]
) -> None:
    token = get_token("decisions:create")
    before = client.get("/metrics").get_data(as_text=True)
    outcomes = []
    for i in range(6):
        resp = client.post(
            "/v1/pipelines/credit-risk/decisions", json=body(i), headers=bearer(token)
        )
        outcomes.append(resp.get_json()["outcome"])
    client.post("/v1/pipelines/credit-risk/decisions", json={"x": 1}, headers=bearer(token))
    after = client.get("/metrics")
    assert after.status_code == 200 and after.mimetype == "text/plain"
    text = after.get_data(as_text=True)
    for outcome in set(outcomes) | {"rejected"}:
        expected = outcomes.count(outcome) or 1
        delta = _sample(text, "loangate_decisions_total", pipeline="credit-risk", outcome=outcome)
        delta -= _sample(
            before, "loangate_decisions_total", pipeline="credit-risk", outcome=outcome
        )
        assert delta == expected
    rule = "/v1/pipelines/<pipeline>/decisions"
    created = _sample(text, "loangate_http_requests_total", route=rule, status="201")
    assert created - _sample(before, "loangate_http_requests_total", route=rule, status="201") == 6
    scored = _sample(text, "loangate_stage_seconds_count", stage="scorer:sklearn")
    assert scored - _sample(before, "loangate_stage_seconds_count", stage="scorer:sklearn") == 6
    assert _sample(text, "loangate_model_info", pipeline="credit-risk", version="1") == 1
    # no ids in label values: route rules, never paths with a decision id in them
    assert not re.search(r"[0-9A-HJKMNP-TV-Z]{26}", text) and "LN-1" not in text


def test_drift_gauges_follow_the_latest_drift_run(app: Flask, client: FlaskClient) -> None:
    from gateway.monitoring import runs

    engine = app.extensions["loangate"].engine
    for n, (started, psi) in enumerate(
        [("2026-12-01T10:00:00+00:00", 0.05), ("2026-12-01T11:00:00+00:00", 0.31)]
    ):
        runs.store(
            engine,
            {
                "id": f"run-{n}",
                "kind": "drift",
                "pipeline": "credit-risk",
                "model": "german-credit",
                "version": 1,
                "window": {"last": 1000},
                "started_at": started,
                "finished_at": started,
                "alerts": int(psi > 0.2),
                "results": {
                    "features": [{"feature": "credit_amount", "psi": psi, "ks": 0.02}],
                    "score": {"feature": "score", "psi": 0.01, "ks": None},
                },
            },
        )
    text = client.get("/metrics").get_data(as_text=True)
    labels = {"pipeline": "credit-risk", "model": "german-credit", "version": "1"}
    assert (
        _sample(text, "loangate_drift", feature="credit_amount", statistic="psi", **labels) == 0.31
    )
    assert _sample(text, "loangate_drift", feature="score", statistic="psi", **labels) == 0.01
    assert 'feature="score",model="german-credit",pipeline="credit-risk",statistic="ks"' not in text


def test_metrics_behind_a_bearer_token(
    db_url: str, tmp_path: Path, trained_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOANGATE_TEST_SCRAPE_TOKEN", "s3cret-scrape")
    register_demo_model(db_url, tmp_path / "models", trained_model)
    config = gateway_overrides(db_url, tmp_path / "models")
    config["metrics"] = {"bearer_token_env": "LOANGATE_TEST_SCRAPE_TOKEN"}
    application = create_app(config, instance_path=tmp_path / "instance")
    client = application.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=bearer("wrong")).status_code == 401
    assert client.get("/metrics", headers=bearer("s3cret-scrape")).status_code == 200
    fetch_token(application, client, "decisions:read")  # the API itself is unaffected
    application.extensions["loangate"].engine.dispose()


@pytest.mark.e2e
def test_metrics_sum_every_worker(db_url: str, tmp_path: Path, trained_model: Any) -> None:
    with running_server(db_url, tmp_path, trained_model, workers=2) as srv:
        token = srv.token("decisions:create")
        with requests.Session() as http:
            for i in range(24):
                resp = http.post(
                    f"{srv.base}/v1/pipelines/credit-risk/decisions",
                    json=body(i),
                    headers=bearer(token),
                    timeout=10,
                )
                assert resp.status_code == 201
            text = http.get(f"{srv.base}/metrics", timeout=10).text
    assert _sample(text, "loangate_decisions_total", pipeline="credit-risk") == 24
    pids = set(re.findall(r'loangate_model_info\{[^}]*pid="(\d+)"', text))
    assert len(pids) == 1  # model gauges are the answering worker's own
