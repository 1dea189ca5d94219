"""The model registry: versioned skops artifacts, their checksums, stages and metadata.

An artifact is written once, to ``<models_dir>/<name>/v<version>.skops``, and its
sha256 is recorded in the ``model_versions`` table. Loading re-hashes the bytes and
refuses any mismatch, then loads them with skops, trusting only an explicit
allow-list of the scikit-learn/numpy types the gateway's pipelines are made of:
an artifact that needs anything else is refused, never executed.

Stages: ``candidate`` -> ``challenger`` -> ``champion`` -> ``archived``. There is at
most one champion per name: promoting one archives the previous champion. Every stage
change is recorded in ``model_stage_events`` (who, when, from, to, why), which is what
:meth:`ModelRegistry.rollback` reads. Scorers bound to a stage follow it in every
process without a restart (:mod:`gateway.model_switch`).

A version whose model reads a protected attribute is refused at registration
(:class:`ProtectedAttributeUsed`): the attributes are those the pipelines' validators
class as protected (:attr:`ModelRegistry.protected`) and those its metadata excludes.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import os
import threading
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.compiled import COMPILERS, FastModel
from gateway.context import ModelRef
from gateway.db import aware
from gateway.reason_codes import check_model_metadata
from gateway.tables import ModelStageEvent, ModelVersion

STAGES: tuple[str, ...] = ("candidate", "challenger", "champion", "archived")

#: Types an artifact may contain beyond skops's own safe defaults. Whatever else
#: ``skops.io.get_untrusted_types`` reports makes the artifact refused.
#:
#: The ``hgb`` kind adds three. ``TreePredictor`` only holds its node and bitset
#: arrays (skops restores its attributes; nothing runs on load). A
#: ``HistGradientBoostingClassifier`` with categorical features validates numbers
#: through ``FunctionTransformer(functools.partial(check_array, ...))``: skops rebuilds a
#: ``partial`` only around a function that is itself trusted, and the one trusted
#: function, ``check_array``, validates an array and returns it.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "builtins.slice",
        "functools.partial",
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.float64",
        "numpy.int64",
        "numpy.str_",
        "numpy.random.mtrand.RandomState",
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.utils._bunch.Bunch",
        "sklearn.utils.validation.check_array",
    }
)


class RegistryError(Exception):
    """Base class of the registry's errors."""


class ModelNotFound(RegistryError, LookupError):
    """No registered version matches the request."""


class ProtectedAttributeUsed(RegistryError, ValueError):
    """The model reads an attribute classed as protected: it cannot be registered."""


class ArtifactIntegrityError(RegistryError):
    """An artifact's bytes do not hash to the sha256 the registry recorded."""

    def __init__(self, path: Path, expected: str, actual: str) -> None:
        super().__init__(
            f"refusing to load {path}: its sha256 is {actual}, the registry recorded {expected}"
        )
        self.path, self.expected, self.actual = path, expected, actual


class UntrustedArtifact(RegistryError):
    """An artifact contains types outside :data:`TRUSTED_TYPES`."""

    def __init__(self, path: Path, types: builtins.list[str]) -> None:
        super().__init__(f"refusing to load {path}: untrusted types {', '.join(types)}")
        self.path, self.types = path, types


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered model version (a row of ``model_versions``)."""

    name: str
    version: int
    kind: str
    stage: str
    sha256: str
    artifact_path: str  # relative to the registry's models_dir
    metadata: Mapping[str, Any] = field(hash=False, compare=False, repr=False)
    created_at: datetime
    created_by: str

    @property
    def ref(self) -> ModelRef:
        """The reference a decision records."""
        return ModelRef(name=self.name, version=self.version, sha256=self.sha256, kind=self.kind)

    @property
    def key(self) -> tuple[str, int, str]:
        """(name, version, sha256): what identifies a loaded copy."""
        return (self.name, self.version, self.sha256)


@dataclass(frozen=True)
class LoadedModel:
    """A verified, loaded model version: the estimator and its compiled fast path."""

    info: ModelVersionInfo
    estimator: Any
    compiled: FastModel

    @property
    def ref(self) -> ModelRef:
        """The reference a decision records."""
        return self.info.ref


class ModelRegistry:
    """Registers, finds, promotes and safely loads model versions.

    Loaded models are cached per registry, keyed by (name, version, sha256), so a
    scorer and an explainer in the same process share one copy.
    """

    def __init__(self, engine: Engine, models_dir: Path, protected: Collection[str] = ()) -> None:
        from gateway.model_switch import StageFollowers

        self.engine = engine
        self.models_dir = Path(models_dir)
        #: Attributes no registered model may read (set from the pipelines' validators).
        self.protected: frozenset[str] = frozenset(protected)
        #: Scorers following a stage of a model (see :mod:`gateway.model_switch`).
        self.followers = StageFollowers(self)
        self._cache: dict[tuple[str, int, str], LoadedModel] = {}
        self._lock = threading.Lock()

    # -- writing -----------------------------------------------------------------

    def register(
        self,
        name: str,
        estimator: Any,
        metadata: Mapping[str, Any],
        *,
        kind: str,
        stage: str = "candidate",
        created_by: str,
    ) -> ModelVersionInfo:
        """Store ``estimator`` as the next version of ``name`` and return its record."""
        _check_stage(stage)
        _check_name(name)
        check_model_metadata(metadata)  # a reason-code table naming a protected field is refused
        self._check_not_protected(name, estimator, metadata, kind)
        metadata_json = json.dumps(metadata, sort_keys=True, default=_json_default)
        data = _dump(estimator)
        sha256 = hashlib.sha256(data).hexdigest()
        (self.models_dir / name).mkdir(parents=True, exist_ok=True)
        for _attempt in range(5):
            try:
                return self._insert(name, kind, stage, data, sha256, metadata_json, created_by)
            except IntegrityError:
                continue  # another process took this version number: take the next
        raise RegistryError(f"could not allocate a version of {name!r}")

    def _insert(
        self,
        name: str,
        kind: str,
        stage: str,
        data: bytes,
        sha256: str,
        metadata_json: str,
        created_by: str,
    ) -> ModelVersionInfo:
        with Session(self.engine, expire_on_commit=False) as session:
            latest = session.scalar(
                sa.select(sa.func.max(ModelVersion.version)).where(ModelVersion.name == name)
            )
            version = (latest or 0) + 1
            if stage == "champion":
                self._archive_champion(session, name, created_by)
            row = ModelVersion(
                name=name,
                version=version,
                kind=kind,
                stage=stage,
                artifact_path=f"{name}/v{version}.skops",
                sha256=sha256,
                metadata_json=metadata_json,
                created_at=datetime.now(UTC),
                created_by=created_by,
            )
            session.add(row)
            session.add(_event(name, version, None, stage, created_by, "registered"))
            # The flush takes the (name, version) unique key: from here the version is
            # ours, so its file can be put in place before the commit makes it visible
            # (a file left by a crashed attempt is simply overwritten).
            session.flush()
            final = self.models_dir / row.artifact_path
            _write_atomic(final, data)
            try:
                session.commit()
            except Exception:
                final.unlink(missing_ok=True)
                raise
            return _info(row)

    def set_stage(
        self,
        name: str,
        version: int,
        stage: str,
        *,
        changed_by: str = "system",
        reason: str | None = None,
    ) -> ModelVersionInfo:
        """Move a version to ``stage``; a new champion archives the previous one.

        The change and any archiving it causes are recorded, in one transaction.
        """
        _check_stage(stage)
        with Session(self.engine) as session, session.begin():
            row = session.scalar(
                sa.select(ModelVersion)
                .where(ModelVersion.name == name, ModelVersion.version == version)
                .with_for_update()
            )
            if row is None:
                raise ModelNotFound(f"model {name!r} has no version {version}")
            if stage == "champion":
                self._archive_champion(session, name, changed_by, keep=version)
            if row.stage != stage:
                session.add(_event(name, version, row.stage, stage, changed_by, reason))
                row.stage = stage
            session.flush()
            return _info(row)

    def rollback(self, name: str, *, changed_by: str = "system") -> ModelVersionInfo:
        """Make the champion before the current one champion again (the current is archived)."""
        current = self.get(name, stage="champion")
        with Session(self.engine) as session:
            previous = session.scalar(
                sa.select(ModelStageEvent.version)
                .where(
                    ModelStageEvent.name == name,
                    ModelStageEvent.to_stage == "champion",
                    ModelStageEvent.version != current.version,
                )
                .order_by(ModelStageEvent.id.desc())
                .limit(1)
            )
        if previous is None:
            raise ModelNotFound(f"model {name!r} has had no champion before v{current.version}")
        return self.set_stage(
            name,
            previous,
            "champion",
            changed_by=changed_by,
            reason=f"rollback from v{current.version}",
        )

    def history(self, name: str) -> builtins.list[dict[str, Any]]:
        """Every stage change of ``name``'s versions, oldest first."""
        with Session(self.engine) as session:
            rows = session.scalars(
                sa.select(ModelStageEvent)
                .where(ModelStageEvent.name == name)
                .order_by(ModelStageEvent.id)
            )
            return [
                {
                    "version": r.version,
                    "from_stage": r.from_stage,
                    "to_stage": r.to_stage,
                    "changed_by": r.changed_by,
                    "changed_at": aware(r.changed_at).isoformat(),
                    "reason": r.reason,
                }
                for r in rows
            ]

    @staticmethod
    def _archive_champion(
        session: Session, name: str, changed_by: str, keep: int | None = None
    ) -> None:
        champions = session.scalars(
            sa.select(ModelVersion)
            .where(ModelVersion.name == name, ModelVersion.stage == "champion")
            .with_for_update()
        )
        for row in champions:
            if row.version != keep:
                session.add(
                    _event(name, row.version, "champion", "archived", changed_by, "replaced")
                )
                row.stage = "archived"

    def _check_not_protected(
        self, name: str, estimator: Any, metadata: Mapping[str, Any], kind: str
    ) -> None:
        """Refuse a model that reads a protected attribute (checked on the artifact itself)."""
        protected = self.protected | frozenset(metadata.get("protected_excluded", ()))
        compiler = COMPILERS.get(kind)
        if compiler is None:
            raise RegistryError(f"no fast path for model kind {kind!r}")
        try:
            fields = frozenset(compiler(estimator, metadata).fields)
        except Exception as exc:  # whatever the fast path cannot read is not registered
            raise RegistryError(
                f"model {name!r} cannot be compiled as a {kind!r} model: {exc}"
            ) from exc
        used = fields & protected
        if used:
            raise ProtectedAttributeUsed(
                f"model {name!r} reads protected attribute(s) {', '.join(sorted(used))}: "
                "protected attributes are kept for fairness monitoring, never model inputs"
            )

    def stage_heads(self) -> dict[tuple[str, str], ModelVersionInfo]:
        """The newest version at each (name, stage) of the live stages: one small query."""
        query = (
            sa.select(ModelVersion)
            .where(ModelVersion.stage.in_(("champion", "challenger")))
            .order_by(ModelVersion.version)
        )
        with Session(self.engine) as session:
            return {(row.name, row.stage): _info(row) for row in session.scalars(query)}

    # -- reading -----------------------------------------------------------------

    def get(
        self, name: str, *, version: int | None = None, stage: str | None = None
    ) -> ModelVersionInfo:
        """One version of ``name``: by number, or the newest at ``stage``, or the newest."""
        if version is not None and stage is not None:
            raise ValueError("give a version or a stage, not both")
        query = sa.select(ModelVersion).where(ModelVersion.name == name)
        if version is not None:
            query = query.where(ModelVersion.version == version)
        if stage is not None:
            _check_stage(stage)
            query = query.where(ModelVersion.stage == stage)
        with Session(self.engine) as session:
            row = session.scalar(query.order_by(ModelVersion.version.desc()).limit(1))
            if row is None:
                raise ModelNotFound(_not_found_message(name, version, stage))
            return _info(row)

    def list(self, name: str | None = None) -> builtins.list[ModelVersionInfo]:
        """Every registered version (of ``name``), by name then version."""
        query = sa.select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version)
        if name is not None:
            query = query.where(ModelVersion.name == name)
        with Session(self.engine) as session:
            return [_info(row) for row in session.scalars(query)]

    def artifact(self, info: ModelVersionInfo) -> Path:
        """The absolute path of ``info``'s artifact (never outside ``models_dir``)."""
        root = self.models_dir.resolve()
        path = (root / info.artifact_path).resolve()
        if not path.is_relative_to(root):
            raise RegistryError(f"artifact path {info.artifact_path!r} escapes the models folder")
        return path

    # -- loading -----------------------------------------------------------------

    def load(self, info: ModelVersionInfo) -> LoadedModel:
        """Verify, load and compile ``info``'s artifact (cached per version and hash)."""
        with self._lock:
            cached = self._cache.get(info.key)
        if cached is not None:
            return cached
        path = self.artifact(info)
        estimator = load_artifact(path, info.sha256)
        compiler = COMPILERS.get(info.kind)
        if compiler is None:
            raise RegistryError(f"no fast path for model kind {info.kind!r}")
        loaded = LoadedModel(
            info=info, estimator=estimator, compiled=compiler(estimator, info.metadata)
        )
        with self._lock:
            return self._cache.setdefault(info.key, loaded)

    def loaded(self, ref: ModelRef) -> LoadedModel:
        """The loaded model a decision was scored with (loads it if this process has not)."""
        with self._lock:
            cached = self._cache.get((ref.name, ref.version, ref.sha256))
        if cached is not None:
            return cached
        info = self.get(ref.name, version=ref.version)
        if info.sha256 != ref.sha256:
            raise ArtifactIntegrityError(self.artifact(info), ref.sha256, info.sha256)
        return self.load(info)


def load_artifact(path: Path, expected_sha256: str) -> Any:
    """Load a skops artifact after checking its sha256 and the types it contains.

    The bytes are read once, so the file that is hashed is the file that is loaded.
    """
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ArtifactIntegrityError(path, expected_sha256, actual)
    untrusted = sio.get_untrusted_types(data=data)
    refused = sorted(t for t in untrusted if t not in TRUSTED_TYPES)
    if refused:
        raise UntrustedArtifact(path, refused)
    return sio.loads(data, trusted=untrusted)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _dump(estimator: Any) -> bytes:
    buffer = io.BytesIO()
    sio.dump(estimator, buffer)
    return buffer.getvalue()


def _event(
    name: str, version: int, from_stage: str | None, to_stage: str, by: str, reason: str | None
) -> ModelStageEvent:
    return ModelStageEvent(
        name=name,
        version=version,
        from_stage=from_stage,
        to_stage=to_stage,
        changed_by=by,
        changed_at=datetime.now(UTC),
        reason=reason,
    )


def _info(row: ModelVersion) -> ModelVersionInfo:
    created_at = aware(row.created_at)
    return ModelVersionInfo(
        name=row.name,
        version=row.version,
        kind=row.kind,
        stage=row.stage,
        sha256=row.sha256,
        artifact_path=row.artifact_path,
        metadata=json.loads(row.metadata_json),
        created_at=created_at,
        created_by=row.created_by,
    )


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")


def _check_name(name: str) -> None:
    # The name becomes a folder: keep it to one safe path segment.
    if not name or name in {".", ".."} or any(c in name for c in "/\\\0") or name.startswith("."):
        raise ValueError(f"invalid model name {name!r}")


def _not_found_message(name: str, version: int | None, stage: str | None) -> str:
    if version is not None:
        return f"model {name!r} has no version {version}"
    if stage is not None:
        return f"model {name!r} has no version at stage {stage!r}"
    return f"no model named {name!r} is registered"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"metadata value of type {type(value).__name__} is not JSON-serialisable")
