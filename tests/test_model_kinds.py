"""The three model kinds: fast paths equal to scikit-learn, faithful explanations, safe loading.

For each of logistic, scorecard and hgb: the compiled fast path equals the fitted
pipeline's ``predict_proba`` on every German credit row; on random applicants the
explanation adds up (``base + sum(contributions) == logit``) within 1e-6, also against
scikit-learn's own ``decision_function``; contributions are the caller's fields;
the artifact round-trips through the registry and loads with the allow-list only.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import db
from gateway.compiled import COMPILERS, FastModel
from gateway.compiled_scorecard import CompiledScorecard
from gateway.compiled_trees import CompiledForest
from gateway.registry import TRUSTED_TYPES, ModelRegistry
from gateway.training import EXPLANATION_METHODS, PROTECTED, TRAINERS, TrainedModel, train
from gateway.training import load_training_data as load_data

KINDS = ("logistic", "scorecard", "hgb")
RANDOM_APPLICANTS = 1000


@pytest.fixture(scope="module")
def models(trained_model: TrainedModel) -> dict[str, TrainedModel]:
    """One trained model per kind (the logistic one is the session's)."""
    return {
        "logistic": trained_model,
        "scorecard": train(kind="scorecard"),
        "hgb": train(kind="hgb"),
    }


@pytest.fixture(scope="module")
def compiled(models: dict[str, TrainedModel]) -> dict[str, FastModel]:
    return {kind: COMPILERS[kind](m.estimator, m.metadata) for kind, m in models.items()}


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return load_data().X()


def _spec(models: Mapping[str, TrainedModel]) -> list[dict[str, Any]]:
    return list(models["logistic"].metadata["features"])


def random_applicants(features: list[dict[str, Any]], n: int, seed: int) -> pd.DataFrame:
    """``n`` applicants drawn uniformly over wide ranges (beyond the data's), with
    categories that include a label the model never saw."""
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for f in features:
        if f["type"] == "categorical":
            labels = [*f["categories"], "a label never seen"]
            out[f["name"]] = rng.choice(labels, size=n)
    out["duration_in_month"] = rng.integers(1, 121, size=n)
    out["credit_amount"] = rng.integers(1, 100_001, size=n)
    for name in (
        "installment_rate_in_percentage_of_disposable_income",
        "present_residence_since",
        "number_of_existing_credits_at_this_bank",
    ):
        out[name] = rng.integers(0, 7, size=n)
    out["age_in_years"] = rng.integers(18, 100, size=n)
    out["number_of_people_being_liable_to_provide_maintenance_for"] = rng.integers(0, 5, size=n)
    out["credit_per_month"] = out["credit_amount"] / out["duration_in_month"]
    return pd.DataFrame(out)[[f["name"] for f in features]]


def test_every_kind_is_trainable_and_offered_by_the_cli() -> None:
    from gateway.cli import MODEL_KINDS

    assert tuple(TRAINERS) == KINDS == MODEL_KINDS
    assert set(COMPILERS) == set(KINDS) == set(EXPLANATION_METHODS)


@pytest.mark.parametrize("kind", KINDS)
def test_fast_path_equals_sklearn_on_every_row(
    kind: str, models: dict[str, TrainedModel], compiled: dict[str, FastModel], rows: pd.DataFrame
) -> None:
    expected = models[kind].estimator.predict_proba(rows)[:, 1]
    single = np.array([compiled[kind].probability(r) for r in rows.to_dict("records")])
    assert len(single) == 1000
    np.testing.assert_allclose(single, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(compiled[kind].predict_proba_frame(rows), expected, atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_additivity_against_sklearn_on_1000_random_applicants(
    kind: str, models: dict[str, TrainedModel], compiled: dict[str, FastModel]
) -> None:
    frame = random_applicants(_spec(models), RANDOM_APPLICANTS, seed=7)
    estimator = models[kind].estimator
    p = estimator.predict_proba(frame)[:, 1]
    if kind == "hgb":
        margin = estimator.decision_function(frame)
        np.testing.assert_allclose(margin, np.log(p / (1 - p)), atol=1e-9)
    else:
        margin = estimator.decision_function(frame)
    model = compiled[kind]
    for row, expected in zip(frame.to_dict("records"), margin, strict=True):
        base, contributions = model.explain(row)
        assert abs(base + sum(contributions.values()) - expected) < 1e-6
    np.testing.assert_allclose(model.predict_proba_frame(frame), p, rtol=0, atol=1e-9)


def _applicant_strategy(features: list[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for f in features:
        if f["type"] == "categorical":
            fields[f["name"]] = st.sampled_from([*f["categories"], "never seen"])
        elif f["name"] != "credit_per_month":
            fields[f["name"]] = st.integers(0, 200_000)
    fields["duration_in_month"] = st.integers(1, 120)

    def derive(app: dict[str, Any]) -> dict[str, Any]:
        return {**app, "credit_per_month": app["credit_amount"] / app["duration_in_month"]}

    return st.fixed_dictionaries(fields).map(derive)


@pytest.mark.parametrize("kind", KINDS)
def test_explanations_add_up_property(
    kind: str, models: dict[str, TrainedModel], compiled: dict[str, FastModel]
) -> None:
    """|sum(contributions) + base - logit(p)| < 1e-6 for 1,000 generated applicants."""
    model = compiled[kind]
    fields = set(model.fields)

    @settings(
        max_examples=RANDOM_APPLICANTS,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(_applicant_strategy(_spec(models)))
    def check(applicant: dict[str, Any]) -> None:
        base, contributions = model.explain(applicant)
        p = model.probability(applicant)
        logit = model.logit(applicant)
        assert abs(base + sum(contributions.values()) - logit) < 1e-6
        if 1e-12 < p < 1 - 1e-12:
            assert abs(base + sum(contributions.values()) - math.log(p / (1 - p))) < 1e-6
        assert set(contributions) == fields

    check()


@pytest.mark.parametrize("kind", KINDS)
def test_contributions_are_the_callers_fields(
    kind: str, models: dict[str, TrainedModel], compiled: dict[str, FastModel], rows: pd.DataFrame
) -> None:
    model = compiled[kind]
    assert model.explanation_method == EXPLANATION_METHODS[kind]
    base, contributions = model.explain(rows.iloc[1].to_dict())
    names = [f["name"] for f in models[kind].metadata["features"]]
    assert set(contributions) == set(names) and list(model.fields) == names
    assert "credit_per_month" in contributions  # the derived feature is its own field
    assert not set(PROTECTED) & set(contributions)
    assert math.isfinite(base)


def test_scorecard_points_are_the_explanation(
    models: dict[str, TrainedModel], compiled: dict[str, FastModel], rows: pd.DataFrame
) -> None:
    card = models["scorecard"].metadata["scorecard"]
    model = compiled["scorecard"]
    assert isinstance(model, CompiledScorecard)
    factor, offset = card["scaling"]["factor"], card["scaling"]["offset"]
    assert card["scaling"]["base_points"] == 600 and card["scaling"]["pdo"] == 20
    assert offset + factor * -math.log(50) == pytest.approx(600 - factor * 2 * math.log(50))
    by_field = {f["field"]: f for f in card["fields"]}
    assert set(by_field) == set(model.fields)
    for row in rows.head(50).to_dict("records"):
        # The applicant's points, bin by bin from the table, add up to the score.
        points = 0.0
        for term in model.terms:
            weight = term.weight(row)
            matches = [b for b in by_field[term.field]["bins"] if b["log_odds"] == weight]
            assert matches, term.field
            points += matches[0]["points"]
        assert points == pytest.approx(offset - factor * model.logit(row), abs=1e-9)
    for f in card["fields"]:
        if f["type"] == "numeric":  # pooled to a monotone bad rate
            woe = [b["woe"] for b in f["bins"]]
            assert woe == sorted(woe) or woe == sorted(woe, reverse=True), f["field"]


def test_hgb_base_value_is_the_expected_margin(compiled: dict[str, FastModel]) -> None:
    model = compiled["hgb"]
    assert isinstance(model, CompiledForest)
    # leaf values weighted by training cover, averaged: the expected raw prediction
    assert model.base_value == pytest.approx(model.baseline + model.paths.expected)


def test_hgb_unknown_category_is_a_missing_value(
    models: dict[str, TrainedModel], compiled: dict[str, FastModel], rows: pd.DataFrame
) -> None:
    row = {**rows.iloc[3].to_dict(), "purpose": "a purpose never seen"}
    expected = models["hgb"].estimator.predict_proba(pd.DataFrame([row]))[0, 1]
    assert compiled["hgb"].probability(row) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_registry_round_trip_and_safe_load(
    kind: str, models: dict[str, TrainedModel], tmp_path: Path, rows: pd.DataFrame
) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'loangate.db'}")
    db.upgrade(engine)
    registry = ModelRegistry(engine, tmp_path / "models")
    m = models[kind]
    info = registry.register(
        f"gc-{kind}", m.estimator, m.metadata, kind=kind, stage="champion", created_by="tests"
    )
    assert info.metadata["reason_codes"]["label"] == "german-credit@1"
    data = registry.artifact(info).read_bytes()
    assert set(sio.get_untrusted_types(data=data)) <= TRUSTED_TYPES
    loaded = ModelRegistry(engine, tmp_path / "models").load(registry.get(f"gc-{kind}"))
    expected = m.estimator.predict_proba(rows)[:, 1]
    np.testing.assert_allclose(loaded.estimator.predict_proba(rows)[:, 1], expected, atol=1e-12)
    np.testing.assert_allclose(loaded.compiled.predict_proba_frame(rows), expected, atol=1e-9)
    assert loaded.compiled.explanation_method == EXPLANATION_METHODS[kind]
    engine.dispose()


def test_hgb_artifact_needs_exactly_the_documented_types(models: dict[str, TrainedModel]) -> None:
    buffer = io.BytesIO()
    sio.dump(models["hgb"].estimator, buffer)
    assert set(sio.get_untrusted_types(data=buffer.getvalue())) == {
        "functools.partial",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.utils.validation.check_array",
    }
