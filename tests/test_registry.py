"""The model registry on SQLite and PostgreSQL: versions, stages, integrity, safe loading."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
import sqlalchemy as sa
from sklearn.base import BaseEstimator

from gateway.compiled import CompiledLinearModel
from gateway.registry import (
    ArtifactIntegrityError,
    ModelNotFound,
    ModelRegistry,
    ModelVersionInfo,
    RegistryError,
    UntrustedArtifact,
)
from gateway.training import TrainedModel, load_training_data, train_and_register


class Opaque(BaseEstimator):
    """A type no allow-list knows: its artifact must be refused."""

    def __init__(self, payload: str = "x") -> None:
        self.payload = payload


@pytest.fixture(scope="module")
def trained(trained_model: TrainedModel) -> TrainedModel:
    return trained_model  # conftest trains once per session


@pytest.fixture
def registry(engine: sa.Engine, tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(engine, tmp_path / "models")


def _register(
    registry: ModelRegistry, trained: TrainedModel, stage: str = "candidate"
) -> ModelVersionInfo:
    return registry.register(
        "german-credit",
        trained.estimator,
        trained.metadata,
        kind=trained.kind,
        stage=stage,
        created_by="tests",
    )


def test_round_trip(registry: ModelRegistry, trained: TrainedModel) -> None:
    info = _register(registry, trained)
    assert (info.name, info.version, info.kind, info.stage) == (
        "german-credit",
        1,
        "logistic",
        "candidate",
    )
    assert info.artifact_path == "german-credit/v1.skops"
    path = registry.models_dir / info.artifact_path
    assert hashlib.sha256(path.read_bytes()).hexdigest() == info.sha256
    assert info.created_at.tzinfo is not None

    got = registry.get("german-credit", version=1)
    assert got == info
    assert got.metadata == trained.metadata
    assert got.created_at.astimezone(UTC) == info.created_at.astimezone(UTC)
    assert got.ref.as_dict() == {
        "name": "german-credit",
        "version": 1,
        "sha256": info.sha256,
        "kind": "logistic",
    }

    loaded = registry.load(got)
    assert isinstance(loaded.compiled, CompiledLinearModel)
    X = load_training_data().X()
    np.testing.assert_allclose(
        loaded.estimator.predict_proba(X), trained.estimator.predict_proba(X), rtol=0, atol=0
    )
    np.testing.assert_allclose(
        loaded.compiled.predict_proba_frame(X),
        trained.estimator.predict_proba(X)[:, 1],
        rtol=0,
        atol=1e-9,
    )
    assert registry.load(got) is loaded  # cached
    assert registry.loaded(got.ref) is loaded


def test_versions_and_champion(registry: ModelRegistry, trained: TrainedModel) -> None:
    v1 = _register(registry, trained, stage="champion")
    v2 = _register(registry, trained, stage="champion")
    v3 = _register(registry, trained)
    assert [v1.version, v2.version, v3.version] == [1, 2, 3]
    assert [i.stage for i in registry.list("german-credit")] == [
        "archived",
        "champion",
        "candidate",
    ]
    assert registry.get("german-credit", stage="champion").version == 2
    assert registry.get("german-credit").version == 3  # newest of any stage

    promoted = registry.set_stage("german-credit", 3, "champion")
    assert promoted.stage == "champion"
    assert [i.stage for i in registry.list()] == ["archived", "archived", "champion"]
    assert registry.get("german-credit", stage="champion").version == 3


def test_names_are_independent(registry: ModelRegistry, trained: TrainedModel) -> None:
    _register(registry, trained, stage="champion")
    other = registry.register(
        "other",
        trained.estimator,
        trained.metadata,
        kind="logistic",
        stage="champion",
        created_by="t",
    )
    assert other.version == 1
    assert registry.get("german-credit", stage="champion").version == 1
    assert [i.name for i in registry.list()] == ["german-credit", "other"]


def test_not_found_is_clear(registry: ModelRegistry, trained: TrainedModel) -> None:
    with pytest.raises(ModelNotFound, match="no model named 'nope'"):
        registry.get("nope")
    _register(registry, trained)
    with pytest.raises(ModelNotFound, match="no version 7"):
        registry.get("german-credit", version=7)
    with pytest.raises(ModelNotFound, match="stage 'champion'"):
        registry.get("german-credit", stage="champion")
    with pytest.raises(ModelNotFound):
        registry.set_stage("german-credit", 9, "champion")
    with pytest.raises(ValueError, match="not both"):
        registry.get("german-credit", version=1, stage="candidate")
    with pytest.raises(ValueError, match="unknown stage"):
        registry.set_stage("german-credit", 1, "production")


def test_tampered_artifact_is_refused(registry: ModelRegistry, trained: TrainedModel) -> None:
    info = _register(registry, trained)
    path = registry.models_dir / info.artifact_path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError) as caught:
        registry.load(info)
    message = str(caught.value)
    assert str(path.name) in message
    assert info.sha256 in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message


def test_untrusted_types_are_refused(registry: ModelRegistry, trained: TrainedModel) -> None:
    # Registration compiles the model, so an opaque object never gets in that way: put
    # one in place of a registered artifact, as a tampered models folder would.
    info = _register(registry, trained)
    data = sio.dumps(Opaque())
    registry.artifact(info).write_bytes(data)
    tampered = replace(info, sha256=hashlib.sha256(data).hexdigest())
    with pytest.raises(UntrustedArtifact, match=r"test_registry\.Opaque"):
        registry.load(tampered)


def test_a_model_that_cannot_be_compiled_is_refused(
    registry: ModelRegistry, trained: TrainedModel
) -> None:
    with pytest.raises(RegistryError, match="cannot be compiled"):
        registry.register("opaque", Opaque(), trained.metadata, kind="logistic", created_by="t")
    assert registry.list("opaque") == []


def test_artifact_path_cannot_escape(registry: ModelRegistry, trained: TrainedModel) -> None:
    info = _register(registry, trained)
    with pytest.raises(Exception, match="escapes"):
        registry.load(replace(info, artifact_path="../../etc/passwd"))
    with pytest.raises(ValueError, match="invalid model name"):
        registry.register("../x", trained.estimator, {}, kind="logistic", created_by="t")


def test_loaded_reloads_in_a_fresh_process(registry: ModelRegistry, trained: TrainedModel) -> None:
    info = _register(registry, trained, stage="champion")
    fresh = ModelRegistry(registry.engine, registry.models_dir)  # as another worker would
    assert fresh.loaded(info.ref).info == info
    with pytest.raises(ArtifactIntegrityError):
        fresh.loaded(replace(info.ref, sha256="0" * 64))


def test_train_and_register(registry: ModelRegistry) -> None:
    info = train_and_register(registry, created_by="ops@example")
    assert (info.name, info.stage, info.created_by) == ("german-credit", "champion", "ops@example")
    assert info.metadata["metrics"]["auc"] > 0.7
