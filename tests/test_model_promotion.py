"""Model promotion: stages and their history, rollback, the checks, and every worker
following a new champion without a restart or a failed request."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from gateway import db
from gateway.registry import ModelRegistry, ProtectedAttributeUsed
from gateway.training import train
from tests.conftest import MODEL_NAME, bearer
from tests.helpers import body
from tests.servers import running_server


@pytest.fixture(scope="module")
def second_model() -> Any:
    """Another logistic version (another seed: other coefficients)."""
    return train(seed=7)


def _registry(app: Flask) -> ModelRegistry:
    registry: ModelRegistry = app.extensions["loangate"].extras["registry"]
    return registry


def _register(registry: ModelRegistry, trained: Any, stage: str = "challenger") -> int:
    info = registry.register(
        MODEL_NAME,
        trained.estimator,
        trained.metadata,
        kind=trained.kind,
        stage=stage,
        created_by="tests",
    )
    return info.version


def _decide(client: FlaskClient, token: str) -> dict[str, Any]:
    resp = client.post("/v1/pipelines/credit-risk/decisions", json=body(), headers=bearer(token))
    assert resp.status_code == 201, resp.get_json()
    doc: dict[str, Any] = resp.get_json()
    return doc


def _stage(client: FlaskClient, token: str, version: int, stage: str, **extra: Any) -> Any:
    return client.post(
        f"/v1/models/{MODEL_NAME}/versions/{version}/stage",
        json={"stage": stage, **extra},
        headers=bearer(token),
    )


def test_promotion_switches_the_pipeline_and_rollback_returns(
    app: Flask, client: FlaskClient, get_token: Callable[..., str], second_model: Any
) -> None:
    admin, scorer = get_token("models:admin"), get_token("decisions:create")
    auditor = get_token("decisions:read")
    assert _decide(client, scorer)["model"]["version"] == 1
    v2 = _register(_registry(app), second_model)
    assert _decide(client, scorer)["model"]["version"] == 1  # a challenger scores nothing yet

    resp = _stage(client, admin, v2, "champion", reason="better holdout AUC")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["stage"] == "champion"
    decided = _decide(client, scorer)
    assert decided["model"]["version"] == v2
    assert decided["model"]["sha256"] == _registry(app).get(MODEL_NAME, version=v2).sha256

    resp = client.post(f"/v1/models/{MODEL_NAME}/rollback", headers=bearer(admin))
    assert resp.status_code == 200 and resp.get_json()["version"] == 1
    assert _decide(client, scorer)["model"]["version"] == 1

    history = client.get(f"/v1/models/{MODEL_NAME}/history", headers=bearer(auditor)).get_json()
    moves = [(e["version"], e["from_stage"], e["to_stage"]) for e in history["events"]]
    assert moves == [
        (1, None, "champion"),
        (2, None, "challenger"),
        (1, "champion", "archived"),
        (2, "challenger", "champion"),
        (2, "champion", "archived"),
        (1, "archived", "champion"),
    ]
    reasons = [e["reason"] for e in history["events"]]
    assert "better holdout AUC" in reasons and "rollback from v2" in reasons
    assert any(e["changed_by"] != "tests" for e in history["events"][3:])


def test_a_version_of_another_kind_is_refused(
    app: Flask, client: FlaskClient, get_token: Callable[..., str]
) -> None:
    admin = get_token("models:admin")
    hgb = _register(_registry(app), train(kind="hgb"))
    resp = _stage(client, admin, hgb, "champion")
    assert resp.status_code == 409
    assert "hgb" in resp.get_json()["detail"]
    assert _registry(app).get(MODEL_NAME, stage="champion").version == 1


def test_stage_changes_need_models_admin_and_a_valid_body(
    app: Flask, client: FlaskClient, get_token: Callable[..., str]
) -> None:
    auditor, admin = get_token("decisions:read"), get_token("models:admin")
    assert _stage(client, auditor, 1, "archived").status_code == 403
    bad = _stage(client, admin, 1, "production", note="x")
    assert bad.status_code == 422
    pointers = {e["pointer"] for e in bad.get_json()["errors"]}
    assert pointers == {"/stage", "/note"}
    assert _stage(client, admin, 99, "champion").status_code == 404
    resp = client.post(f"/v1/models/{MODEL_NAME}/rollback", headers=bearer(admin))
    assert resp.status_code == 404  # no champion before v1
    listed = client.get("/v1/models?name=german-credit", headers=bearer(auditor)).get_json()
    assert [(i["version"], i["stage"]) for i in listed["items"]] == [(1, "champion")]
    one = client.get(f"/v1/models/{MODEL_NAME}/versions/1", headers=bearer(auditor)).get_json()
    assert one["metadata"]["training_data"]["sha256"] == one["training_data_sha256"]
    assert "reference_profile" in one["metadata"]


def test_a_model_reading_a_protected_attribute_is_refused(app: Flask, second_model: Any) -> None:
    registry = _registry(app)
    assert {"personal_status_and_sex", "foreign_worker"} <= registry.protected
    # A pipeline classing a field the model reads as protected: the version is refused.
    registry.protected = registry.protected | {"age_in_years"}
    with pytest.raises(ProtectedAttributeUsed, match="age_in_years"):
        _register(registry, second_model)
    assert [i.version for i in registry.list(MODEL_NAME)] == [1]


@pytest.mark.e2e
def test_every_worker_follows_a_promotion_without_a_failed_request(
    db_url: str, tmp_path: Path, trained_model: Any, second_model: Any
) -> None:
    with running_server(db_url, tmp_path, trained_model, workers=3) as srv:
        scorer, admin = srv.token("decisions:create"), srv.token("models:admin")
        engine = db.make_engine(db_url)
        v2 = _register(ModelRegistry(engine, tmp_path / "models"), second_model)
        engine.dispose()
        statuses: list[int] = []
        versions: list[tuple[float, int]] = []
        stop = threading.Event()

        def load() -> None:
            with requests.Session() as http:
                while not stop.is_set():
                    resp = http.post(
                        f"{srv.base}/v1/pipelines/credit-risk/decisions",
                        json=body(),
                        headers=bearer(scorer),
                        timeout=10,
                    )
                    statuses.append(resp.status_code)
                    if resp.status_code == 201:
                        versions.append((time.monotonic(), resp.json()["model"]["version"]))

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        promoted_at = time.monotonic()
        resp = requests.post(
            f"{srv.base}/v1/models/{MODEL_NAME}/versions/{v2}/stage",
            json={"stage": "champion"},
            headers=bearer(admin),
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
        deadline = promoted_at + 30
        while time.monotonic() < deadline:  # until a long run of answers is all v2
            recent = [v for at, v in versions[-60:] if at > promoted_at]
            if len(recent) == 60 and set(recent) == {v2}:
                break
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join()
    assert statuses and set(statuses) == {201}, "a request failed during the promotion"
    assert {v for _, v in versions[-60:]} == {v2}
    last_old = max((at for at, v in versions if v == 1), default=promoted_at)
    print(f"every worker on v{v2} {last_old - promoted_at:.2f} s after the promotion")
