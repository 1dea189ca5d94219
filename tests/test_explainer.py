"""The sklearn scorer and the linear explainer, as a pipeline runs them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import pytest

from gateway import db
from gateway.components import Services
from gateway.context import DecisionContext
from gateway.registry import ModelNotFound, ModelRegistry, ModelVersionInfo
from gateway.training import TrainedModel, load_training_data
from plugins.explainers.linear import ExplanationError, LinearExplainer, register_explainers
from plugins.scorers.sklearn import SklearnScorer, register_scorers
from tests.helpers import context_for


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory, trained_model: TrainedModel) -> Services:
    root = tmp_path_factory.mktemp("explainer")
    engine = db.make_engine(f"sqlite:///{root / 'loangate.db'}")
    db.upgrade(engine)
    registry = ModelRegistry(engine, root / "models")
    trained = trained_model
    for stage in ("champion", "candidate"):
        registry.register(
            "german-credit",
            trained.estimator,
            trained.metadata,
            kind="logistic",
            stage=stage,
            created_by="tests",
        )
    return Services(config_dir=root, instance_path=root, registry=registry)


@pytest.fixture(scope="module")
def champion(services: Services) -> ModelVersionInfo:
    return services.registry.get("german-credit", stage="champion")


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return load_training_data().X().to_dict("records")


def _ctx(features: dict[str, Any]) -> DecisionContext:
    return context_for(features, features)


def test_score_and_explain(
    services: Services, champion: ModelVersionInfo, rows: list[dict[str, Any]]
) -> None:
    scorer = SklearnScorer({"model": "german-credit"}, services)
    explainer = LinearExplainer({}, services)
    assert scorer.ready()
    assert scorer.model_features() == frozenset(scorer.model.compiled.fields)
    assert "personal_status_and_sex" not in scorer.model_features()
    assert scorer.model.info == champion
    for features in rows[:50]:
        ctx = explainer.explain(scorer.score(_ctx(features)))
        assert ctx.score is not None and ctx.explanation is not None
        assert ctx.score.model == champion.ref
        frame = pd.DataFrame([features])
        expected = scorer.model.estimator.predict_proba(frame)[0, 1]
        assert abs(ctx.score.probability - expected) < 1e-9
        assert ctx.score.logit == pytest.approx(math.log(expected / (1 - expected)), abs=1e-9)
        e = ctx.explanation
        assert e.method == "linear-exact"
        assert e.output == ctx.score.logit
        assert set(e.contributions) == set(scorer.model.compiled.fields)
        assert abs(e.base_value + sum(e.contributions.values()) - e.output) < 1e-9


def test_version_pin(services: Services) -> None:
    scorer = SklearnScorer({"model": "german-credit", "version": 2}, services)
    assert (scorer.model.info.version, scorer.model.info.stage) == (2, "candidate")
    assert scorer.describe()["model"]["version"] == 2
    staged = SklearnScorer({"model": "german-credit", "stage": "candidate"}, services)
    assert staged.model is scorer.model  # one loaded copy per version


def test_explainer_reaches_a_model_this_registry_never_loaded(
    services: Services, champion: ModelVersionInfo, rows: list[dict[str, Any]]
) -> None:
    scored = SklearnScorer({"model": "german-credit"}, services).score(_ctx(rows[0]))
    fresh = ModelRegistry(services.registry.engine, services.registry.models_dir)
    other = Services(services.config_dir, services.instance_path, fresh)
    ctx = LinearExplainer({}, other).explain(scored)
    assert ctx.explanation is not None


def test_unknown_model_is_refused_at_build(services: Services) -> None:
    with pytest.raises(ModelNotFound):
        SklearnScorer({"model": "nope"}, services)


def test_explainer_needs_a_score(services: Services, rows: list[dict[str, Any]]) -> None:
    with pytest.raises(ExplanationError, match="after a scorer"):
        LinearExplainer({}, services).explain(_ctx(rows[0]))


def test_unfaithful_explanation_is_an_error(services: Services, rows: list[dict[str, Any]]) -> None:
    scored = SklearnScorer({"model": "german-credit"}, services).score(_ctx(rows[0]))
    changed = scored.evolve(features={**rows[0], "age_in_years": rows[0]["age_in_years"] + 30})
    with pytest.raises(ExplanationError, match="miss"):
        LinearExplainer({}, services).explain(changed)


@pytest.mark.parametrize(
    ("config", "valid"),
    [
        ({"model": "m"}, True),
        ({"model": "m", "version": 3}, True),
        ({"model": "m", "stage": "challenger"}, True),
        ({"model": "m", "version": 3, "stage": "champion"}, False),
        ({"model": "m", "stage": "production"}, False),
        ({"model": "m", "version": 0}, False),
        ({"version": 1}, False),
        ({"model": "m", "extra": 1}, False),
    ],
)
def test_scorer_config_schema(config: dict[str, Any], valid: bool) -> None:
    errors = list(jsonschema.Draft202012Validator(SklearnScorer.config_schema).iter_errors(config))
    assert (not errors) is valid


def test_explainer_config_schema() -> None:
    validator = jsonschema.Draft202012Validator(LinearExplainer.config_schema)
    assert validator.is_valid({})
    assert not validator.is_valid({"top": 3})


def test_hooks_register_the_components() -> None:
    assert register_scorers() == [SklearnScorer]
    assert register_explainers() == [LinearExplainer]
    assert SklearnScorer.name == "sklearn" and LinearExplainer.name == "linear"


def test_models_dir_layout(services: Services) -> None:
    assert sorted(
        p.name for p in Path(services.registry.models_dir, "german-credit").iterdir()
    ) == [
        "v1.skops",
        "v2.skops",
    ]
