"""Each model kind through the gateway: REST decisions explained, reasons from the model's table."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask

from gateway import create_app, db
from gateway.errors import ConfigError
from gateway.reason_codes import ProtectedReason
from gateway.registry import ModelRegistry
from gateway.training import DEFAULT_REASON_CODES, TrainedModel, train
from tests.conftest import bearer, gateway_overrides, register_demo_model
from tests.helpers import applicants, body

CONFIG = Path(__file__).resolve().parent.parent / "config" / "gateway.yaml"
EXPLAINERS = {"logistic": "linear", "scorecard": "scorecard-points", "hgb": "tree-shap"}


@pytest.fixture(scope="module")
def kinds(trained_model: TrainedModel) -> dict[str, TrainedModel]:
    return {
        "logistic": trained_model,
        "scorecard": train(kind="scorecard"),
        "hgb": train(kind="hgb"),
    }


def pipeline(model: str, explainer: str) -> dict[str, Any]:
    """The default credit-risk pipeline with another model, explainer and the model's codes."""
    spec = copy.deepcopy(yaml.safe_load(CONFIG.read_text())["pipelines"]["credit-risk"])
    spec["scorer"]["config"] = {"model": model, "stage": "champion"}
    spec["explainers"] = [{"name": explainer}]
    spec["policy"]["config"]["reason_codes"] = "model"
    return spec


def register(url: str, models_dir: Path, name: str, model: TrainedModel) -> None:
    engine = db.make_engine(url)
    ModelRegistry(engine, models_dir).register(
        name, model.estimator, model.metadata, kind=model.kind, stage="champion", created_by="t"
    )
    engine.dispose()


@pytest.fixture
def kinds_app(
    db_url: str, tmp_path: Path, trained_model: TrainedModel, kinds: dict[str, TrainedModel]
) -> Iterator[Flask]:
    """A gateway with one pipeline per kind: ``kind-logistic``, ``kind-scorecard``, ``kind-hgb``."""
    models_dir = tmp_path / "models"
    register_demo_model(db_url, models_dir, trained_model)
    for kind, model in kinds.items():
        register(db_url, models_dir, f"gc-{kind}", model)
    overrides = gateway_overrides(db_url, models_dir)
    overrides["pipelines"] = {
        f"kind-{kind}": pipeline(f"gc-{kind}", EXPLAINERS[kind]) for kind in kinds
    }
    # Without a reason_codes setting the policy takes the model version's table too.
    del overrides["pipelines"]["kind-scorecard"]["policy"]["config"]["reason_codes"]
    application = create_app(overrides, instance_path=tmp_path / "instance")
    yield application
    application.extensions["loangate"].engine.dispose()


def _token(app: Flask, *scopes: str) -> str:
    from gateway.auth.clients import create_client

    client_id, secret = create_client(app.extensions["loangate"].engine, "t", list(scopes))
    resp = app.test_client().post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": " ".join(scopes)},
        auth=(client_id, secret),
    )
    return str(resp.get_json()["access_token"])


def _declined_index(model: TrainedModel) -> int:
    """The first German credit applicant this model declines (p >= 0.55)."""
    import pandas as pd

    from gateway.derived import DEMO_DERIVATIONS, derive_frame

    frame = derive_frame(pd.DataFrame(applicants()), DEMO_DERIVATIONS)
    p = model.estimator.predict_proba(frame[list(model.estimator.feature_names_in_)])[:, 1]
    return int(next(i for i, v in enumerate(p) if v >= 0.6))


@pytest.mark.parametrize("kind", ["logistic", "scorecard", "hgb"])
def test_a_decision_with_each_kind_is_explained_with_the_models_codes(
    kind: str, kinds_app: Flask, kinds: dict[str, TrainedModel]
) -> None:
    client = kinds_app.test_client()
    token = _token(kinds_app, "decisions:create", "decisions:read")
    index = _declined_index(kinds[kind])
    resp = client.post(
        f"/v1/pipelines/kind-{kind}/decisions", json=body(index), headers=bearer(token)
    )
    assert resp.status_code == 201, resp.get_json()
    doc = resp.get_json()
    assert doc["model"]["kind"] == kind and doc["model"]["name"] == f"gc-{kind}"
    assert doc["outcome"] == "decline"
    p = doc["probability_of_default"]
    e = doc["explanation"]
    assert e["method"] == {"logistic": "linear-exact"}.get(kind, EXPLAINERS[kind])
    assert abs(e["base_value"] + sum(e["contributions"].values()) - math.log(p / (1 - p))) < 1e-6
    assert "credit_per_month" in e["contributions"]
    assert not {"personal_status_and_sex", "foreign_worker"} & set(e["contributions"])
    table = kinds[kind].metadata["reason_codes"]
    reasons = doc["reason_codes"]
    assert 1 <= len(reasons) <= 4
    assert doc["policy"]["reason_table_version"] == table["label"] == "german-credit@1"
    for reason in reasons:
        assert table["codes"][reason["field"]] == {"code": reason["code"], "text": reason["text"]}
        assert reason["contribution"] == pytest.approx(e["contributions"][reason["field"]])
    ranked = sorted(
        (v for f, v in e["contributions"].items() if v > 0 and f in table["codes"]), reverse=True
    )
    assert [r["contribution"] for r in reasons] == pytest.approx(ranked[: len(reasons)])
    stored = client.get(doc["links"]["self"], headers=bearer(token)).get_json()
    assert [r["code"] for r in stored["reason_codes"]] == [r["code"] for r in reasons]


def test_an_imputed_field_is_flagged_and_never_a_reason(kinds_app: Flask) -> None:
    client = kinds_app.test_client()
    token = _token(kinds_app, "decisions:create")
    payload = body(1, status_of_existing_checking_account=...)
    resp = client.post("/v1/pipelines/kind-hgb/decisions", json=payload, headers=bearer(token))
    assert resp.status_code == 201, resp.get_json()
    doc = resp.get_json()
    assert doc["explanation"]["imputed"] == ["status_of_existing_checking_account"]
    assert "status_of_existing_checking_account" in doc["explanation"]["contributions"]
    assert all(r["field"] != "status_of_existing_checking_account" for r in doc["reason_codes"])


def test_an_explainer_that_does_not_fit_the_model_refuses_to_start(
    tmp_path: Path, kinds: dict[str, TrainedModel]
) -> None:
    url = f"sqlite:///{tmp_path / 'loangate.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    models_dir = tmp_path / "models"
    register_demo_model(url, models_dir, kinds["logistic"])
    register(url, models_dir, "gc-hgb", kinds["hgb"])
    for model, explainer in (("gc-hgb", "linear"), ("german-credit", "tree-shap")):
        overrides = gateway_overrides(url, models_dir)
        overrides["pipelines"] = {"mismatch": pipeline(model, explainer)}
        with pytest.raises(ConfigError, match=r"pipelines\.mismatch\.explainers\.0"):
            create_app(overrides, instance_path=tmp_path / "instance")


def test_a_reason_table_naming_a_protected_attribute_is_refused(
    tmp_path: Path, kinds: dict[str, TrainedModel]
) -> None:
    table = yaml.safe_load(DEFAULT_REASON_CODES.read_text())
    table["codes"]["foreign_worker"] = {"code": "R99", "text": "Where you come from"}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(table))
    with pytest.raises(ProtectedReason, match="foreign_worker"):
        train(kind="scorecard", reason_codes=path)
    # ... and at registration, whatever built the metadata.
    engine = db.make_engine(f"sqlite:///{tmp_path / 'loangate.db'}")
    db.upgrade(engine)
    model = kinds["scorecard"]
    metadata = copy.deepcopy(model.metadata)
    metadata["reason_codes"]["codes"]["foreign_worker"] = {"code": "R99", "text": "x"}
    with pytest.raises(ProtectedReason):
        ModelRegistry(engine, tmp_path / "models").register(
            "bad", model.estimator, metadata, kind="scorecard", created_by="t"
        )
    engine.dispose()


def test_cli_trains_each_kind_with_a_reason_table(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gateway.cli import main

    table = yaml.safe_load(DEFAULT_REASON_CODES.read_text())
    table["version"] = "7"
    path = tmp_path / "codes.yaml"
    path.write_text(yaml.safe_dump(table))
    env = {
        "LOANGATE_DATABASE__URL": f"sqlite:///{tmp_path / 'loangate.db'}",
        "LOANGATE_MODELS__DIR": str(tmp_path / "models"),
        "LOANGATE_INSTANCE": str(tmp_path / "instance"),
    }
    runner = CliRunner(env=env)
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(
        main, ["models", "train", "--name", "gc", "--kind", "hgb", "--reason-codes", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert "(hgb, stage champion)" in result.output and "german-credit@7" in result.output
    refused = runner.invoke(main, ["models", "train", "--kind", "forest"])
    assert refused.exit_code != 0 and "forest" in refused.output
