"""Training of the demo model: inputs, metrics and the metadata it is governed by."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gateway.training import (
    DATA_PATH,
    PROTECTED,
    TARGET,
    TrainedModel,
    file_sha256,
    load_training_data,
    train,
)

DATA_SHA256 = "80a46bcdca8152217a954a4ab08a4d7b9ab015cc9ebc24b1bf1f628b01f4542a"


@pytest.fixture(scope="module")
def trained(trained_model: TrainedModel) -> TrainedModel:
    return trained_model  # conftest trains once per session


def test_protected_attributes_are_never_inputs(trained: TrainedModel) -> None:
    names = [f["name"] for f in trained.metadata["features"]]
    for attr in (*PROTECTED, TARGET):
        assert attr not in names
        assert attr not in trained.estimator.feature_names_in_
    assert trained.metadata["protected_excluded"] == list(PROTECTED)


def test_features_are_the_attributes_plus_the_derived_ratio(trained: TrainedModel) -> None:
    features = {f["name"]: f for f in trained.metadata["features"]}
    assert len(features) == 21 - 1 - len(PROTECTED) + 1
    assert features["credit_per_month"]["type"] == "numeric"
    assert features["age_in_years"]["type"] == "numeric"
    housing = features["housing"]
    assert housing["type"] == "categorical"
    assert housing["categories"] == ["for free", "own", "rent"]
    assert list(trained.estimator.feature_names_in_) == list(features)


def test_metadata_has_holdout_metrics(trained: TrainedModel) -> None:
    metrics = trained.metadata["metrics"]
    assert metrics["auc"] > 0.7
    assert 0.0 < metrics["brier"] < 0.25
    assert metrics["holdout_rows"] == 250
    assert trained.metadata["training_data"] == {
        "file": "german_credit.csv",
        "sha256": DATA_SHA256,
        "rows": 1000,
        "train_rows": 750,
        "holdout_rows": 250,
    }
    assert trained.metadata["kind"] == "logistic"
    assert trained.metadata["sklearn_version"]


def test_reference_profile_covers_every_feature(trained: TrainedModel) -> None:
    profile = trained.metadata["reference_profile"]
    assert profile["rows"] == 750
    assert set(profile["features"]) == {f["name"] for f in trained.metadata["features"]}
    for name, p in profile["features"].items():
        assert p["null_rate"] == 0.0, name
        if p["type"] == "numeric":
            assert p["edges"] == sorted(set(p["edges"]))
            assert len(p["counts"]) == len(p["edges"]) + 1
            assert sum(p["counts"]) == 750
            assert p["std"] > 0
        else:
            assert sum(p["counts"].values()) == 750
            assert sum(p["frequencies"].values()) == pytest.approx(1.0)
    # Continuous values give ten equal bins.
    assert profile["features"]["credit_per_month"]["counts"] == [75] * 10
    assert sum(profile["score"]["counts"]) == 750


def test_profile_bins_follow_the_documented_convention(trained: TrainedModel) -> None:
    data = load_training_data()
    column = data.X(data.train_index)["duration_in_month"].to_numpy()
    p = trained.metadata["reference_profile"]["features"]["duration_in_month"]
    bins = np.searchsorted(np.array(p["edges"]), column, side="left")
    assert np.bincount(bins, minlength=len(p["counts"])).tolist() == p["counts"]


def test_background_means_are_training_means(trained: TrainedModel) -> None:
    means = trained.metadata["explainer"]["means"]
    data = load_training_data()
    X = data.X(data.train_index)
    assert means["numeric"]["age_in_years"] == pytest.approx(X["age_in_years"].mean())
    assert sum(means["categorical"]["housing"].values()) == pytest.approx(1.0)


def test_metadata_is_json(trained: TrainedModel) -> None:
    assert json.loads(json.dumps(trained.metadata)) == trained.metadata


def test_training_is_reproducible(trained: TrainedModel) -> None:
    again = train(seed=42)
    np.testing.assert_array_equal(
        again.estimator.named_steps["clf"].coef_, trained.estimator.named_steps["clf"].coef_
    )
    assert again.metadata["metrics"] == trained.metadata["metrics"]


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown model kind"):
        train(kind="forest")


def test_data_file_hash() -> None:
    assert file_sha256(DATA_PATH) == DATA_SHA256
