"""The compiled fast path: identical to the sklearn pipeline, and exactly additive."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from gateway.compiled import (
    CompiledLinearModel,
    FeatureMissing,
    UnsupportedModel,
    compile_logistic,
    sigmoid,
)
from gateway.derived import DEMO_DERIVATIONS, derive_row
from gateway.training import TrainedModel, load_training_data


@pytest.fixture(scope="module")
def trained(trained_model: TrainedModel) -> TrainedModel:
    return trained_model  # conftest trains once per session


@pytest.fixture(scope="module")
def compiled(trained: TrainedModel) -> CompiledLinearModel:
    return compile_logistic(trained.estimator, trained.metadata)


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return load_training_data().X()


def _pipeline_p(trained: TrainedModel, features: dict[str, Any]) -> float:
    frame = pd.DataFrame([features])[list(trained.estimator.feature_names_in_)]
    return float(trained.estimator.predict_proba(frame)[0, 1])


def test_fast_path_equals_pipeline_on_every_row(
    trained: TrainedModel, compiled: CompiledLinearModel, rows: pd.DataFrame
) -> None:
    expected = trained.estimator.predict_proba(rows)[:, 1]
    single = np.array([compiled.probability(r) for r in rows.to_dict("records")])
    assert len(single) == 1000
    np.testing.assert_allclose(single, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(compiled.predict_proba_frame(rows), expected, rtol=0, atol=1e-9)


def test_explanations_add_up_on_every_row(
    compiled: CompiledLinearModel, rows: pd.DataFrame
) -> None:
    for row in rows.to_dict("records"):
        base, contributions = compiled.explain(row)
        assert abs(base + sum(contributions.values()) - compiled.logit(row)) < 1e-9


def test_mean_contributions_are_zero_over_the_background(
    trained: TrainedModel, compiled: CompiledLinearModel
) -> None:
    # Interventional contributions against the training means average to zero there.
    data = load_training_data()
    totals = dict.fromkeys(compiled.fields, 0.0)
    train_rows = data.X(data.train_index).to_dict("records")
    for row in train_rows:
        for field, value in compiled.explain(row)[1].items():
            totals[field] += value
    for field, total in totals.items():
        assert abs(total / len(train_rows)) < 1e-9, field


def test_fields_are_the_metadata_features(
    trained: TrainedModel, compiled: CompiledLinearModel
) -> None:
    assert list(compiled.fields) == [f["name"] for f in trained.metadata["features"]]


@st.composite
def applicants(draw: st.DrawFn, metadata: dict[str, Any]) -> dict[str, Any]:
    """Random applicants: valid or unknown categories, numbers in plausible ranges."""
    profile = metadata["reference_profile"]["features"]
    out: dict[str, Any] = {}
    for spec in metadata["features"]:
        name = spec["name"]
        if name == "credit_per_month":
            continue
        if spec["type"] == "categorical":
            known = st.sampled_from(spec["categories"])
            label = draw(st.one_of(known, st.text(min_size=1, max_size=12)))
            out[name] = label  # a random text is almost surely an unknown category
        else:
            low, high = int(profile[name]["min"]), int(profile[name]["max"])
            out[name] = draw(st.integers(max(0, low - 1), high * 2))
    out["duration_in_month"] = max(1, out["duration_in_month"])
    out.update(derive_row(out, DEMO_DERIVATIONS))
    return out


def test_property_contributions_add_up(
    trained: TrainedModel, compiled: CompiledLinearModel
) -> None:
    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(applicants(trained.metadata))
    def check(applicant: dict[str, Any]) -> None:
        base, contributions = compiled.explain(applicant)
        logit = compiled.logit(applicant)
        assert set(contributions) == set(compiled.fields)
        assert abs(base + sum(contributions.values()) - logit) < 1e-6
        p = compiled.probability(applicant)
        assert abs(base + sum(contributions.values()) - np.log(p / (1 - p))) < 1e-6

    check()


def test_property_fast_path_matches_pipeline(
    trained: TrainedModel, compiled: CompiledLinearModel
) -> None:
    # Unknown categories included: the encoder ignores them, so must the fast path.
    @settings(max_examples=40, deadline=None)
    @given(applicants(trained.metadata))
    def check(applicant: dict[str, Any]) -> None:
        assert abs(compiled.probability(applicant) - _pipeline_p(trained, applicant)) < 1e-9

    check()


def test_unknown_category_contributes_minus_its_background(
    compiled: CompiledLinearModel, rows: pd.DataFrame
) -> None:
    row = rows.iloc[0].to_dict()
    row["housing"] = "houseboat"
    _, contributions = compiled.explain(row)
    housing = next(t for t in compiled.categorical if t.field == "housing")
    assert contributions["housing"] == pytest.approx(-housing.background)


def test_missing_feature_is_named(compiled: CompiledLinearModel, rows: pd.DataFrame) -> None:
    row = rows.iloc[0].to_dict()
    del row["age_in_years"]
    with pytest.raises(FeatureMissing, match="age_in_years"):
        compiled.logit(row)
    row = rows.iloc[0].to_dict() | {"housing": None}
    with pytest.raises(FeatureMissing, match="housing"):
        compiled.explain(row)
    with pytest.raises(FeatureMissing, match="credit_per_month"):
        compiled.predict_proba_frame(rows.drop(columns=["credit_per_month"]))


def test_other_estimators_are_not_compiled(trained: TrainedModel) -> None:
    with pytest.raises(UnsupportedModel):
        compile_logistic(LogisticRegression(), trained.metadata)
    bare = Pipeline([("clf", trained.estimator.named_steps["clf"])])
    with pytest.raises(UnsupportedModel):
        compile_logistic(bare, trained.metadata)
    with pytest.raises(UnsupportedModel, match="background"):
        compile_logistic(trained.estimator, {})


def test_sigmoid_is_stable() -> None:
    assert sigmoid(0.0) == 0.5
    assert sigmoid(800.0) == 1.0
    assert sigmoid(-800.0) == 0.0
