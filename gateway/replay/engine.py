"""Replaying a logged decision through its logged model version and policy version.

What is re-run: the pipeline's validators on the logged application, its recomputable
enrichers (``derived``), the scorer pinned to the model version the decision records
(not today's champion), the explainers, and the policy rebuilt from the settings
recorded under the decision's policy version (:mod:`gateway.replay.policies`). What is
taken from the log: what enrichers that look things up or call out added (``soap-lookup``,
``feature-lookup``: :attr:`gateway.components.Enricher.recomputable` is false), with the
referral notes they left; they are not called again. The replayed document is then
compared with the logged one (:mod:`gateway.replay.compare`).

Replay runs the single-request engine (:meth:`gateway.pipeline.Pipeline.run`), the
path the REST, SOAP and mapped-XML decisions took; the batch engine gives each row the
same document by contract. Built scorers and policies are kept in a small LRU keyed by
model version and policy version, so replaying many decisions loads each artifact once.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine

from gateway.components import Enricher, Explainer, Policy, Scorer, Services
from gateway.context import DecisionContext, Enrichment, ModelRef
from gateway.decisions import internal_error
from gateway.errors import ConfigError, Problem, validation_failed
from gateway.pipeline import Pipeline, Stage, StageFailed, build_component
from gateway.plugin_manager import ComponentEntry
from gateway.record import build_document
from gateway.registry import LoadedModel, ModelNotFound, ModelRegistry, RegistryError
from gateway.replay.compare import Difference, compare
from gateway.replay.policies import PolicyVersions, policy_version

#: Why a decision could not be replayed (``reproduced: null``).
ERASED = "erased"
REJECTED_BEFORE_PIPELINE = "rejected-before-pipeline"
PIPELINE_UNKNOWN = "pipeline-unknown"
MODEL_UNAVAILABLE = "model-unavailable"
POLICY_UNKNOWN = "policy-unknown"
NOT_REPLAYABLE = "not-replayable"
UNREADABLE = "unreadable"

#: Model versions (and the policies built for them) kept loaded for replay.
DEFAULT_CACHE_SIZE = 8

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


#: What an opened document holds in place of a personal value it cannot give back
#: (:mod:`gateway.personal.documents`): the subject was erased, or the value does not
#: decrypt (altered, or its master key is missing).
ERASED_VALUE: dict[str, bool] = {"$erased": True}
UNREADABLE_VALUE: dict[str, bool] = {"$unreadable": True}

#: Opens a stored document: its sealed personal values decrypted (see :class:`Replayer`).
Opener = Callable[[dict[str, Any]], dict[str, Any]]


def logged_application(document: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The application as received, read from an opened decision document.

    The one place replay reads the applicant's data: ``None`` when the document no longer
    holds all of it (the subject was erased); :class:`Unreplayable` when a personal value
    does not decrypt.
    """
    application = document.get("application")
    if not isinstance(application, Mapping):
        return None
    values = list(application.values())
    if ERASED_VALUE in values:
        return None
    if UNREADABLE_VALUE in values:
        raise Unreplayable(UNREADABLE, "a personal value of the application does not decrypt")
    return application


@dataclass(frozen=True)
class ReplayReport:
    """The result of replaying one decision.

    ``reproduced`` is true when every compared member matched, false with the
    ``differences`` otherwise, and ``None`` when the decision could not be replayed
    (``reason`` and ``detail`` say why).
    """

    decision_id: str
    reproduced: bool | None
    differences: tuple[Difference, ...] = ()
    reason: str | None = None
    detail: str | None = None
    model: Mapping[str, Any] | None = None
    policy: Mapping[str, Any] | None = None
    max_abs_deviation: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "decision_id": self.decision_id,
            "reproduced": self.reproduced,
            "model": self.model,
            "policy": self.policy,
        }
        if self.reproduced is None:
            out["reason"] = self.reason
            out["detail"] = self.detail
        else:
            out["differences"] = [d.as_dict() for d in self.differences]
            out["max_abs_deviation"] = self.max_abs_deviation
        return out


class Unreplayable(Exception):
    """A decision cannot be replayed; ``reason`` is one of the module's reason codes."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


class _Lru(OrderedDict[K, V]):
    """A mapping that keeps its ``size`` most recently used entries."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get(self, key: K, default: Any = None) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        return default

    def setdefault(self, key: K, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self.get(key)

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class _ReplayRegistry(ModelRegistry):
    """The registry replay loads logged versions through: a bounded cache of loaded
    models (the serving registry keeps the few versions it serves for good)."""

    def __init__(self, engine: Engine, models_dir: Path, size: int) -> None:
        super().__init__(engine, models_dir)
        self._cache: dict[tuple[str, int, str], LoadedModel] = _Lru(size)


@dataclass
class _Cursor:
    """Where replay is in the logged enrichments, and which fields the recomputed
    enrichers add (the rest came from enrichers whose output is taken from the log)."""

    logged: tuple[Enrichment, ...]
    recomputed_fields: frozenset[str]
    notes: tuple[str, ...]
    position: int = 0
    notes_restored: bool = False

    def take_logged(self) -> tuple[Enrichment, ...]:
        start = self.position
        while (
            self.position < len(self.logged)
            and self.logged[self.position].field not in self.recomputed_fields
        ):
            self.position += 1
        return self.logged[start : self.position]


class LoggedStageFailure(RuntimeError):
    """An enricher taken from the log had failed when the decision was made."""


@dataclass
class Replayer:
    """Replays logged decisions of the configured pipelines.

    ``specs`` is the configuration's ``pipelines`` section and ``pipelines`` the
    pipelines built from it: validators and enrichers are the serving ones; scorer,
    explainers and policy are rebuilt from their specs through the start-up factory
    (:func:`gateway.pipeline.build_component`), with the logged model and policy versions.
    """

    pipelines: Mapping[str, Pipeline]
    specs: Mapping[str, Mapping[str, Any]]
    catalog: Mapping[str, Mapping[str, ComponentEntry]]
    services: Services
    policies: PolicyVersions
    #: Opens a stored document (personal values decrypted); none: documents are in clear.
    opener: Opener | None = None
    cache_size: int = DEFAULT_CACHE_SIZE
    _scorers: _Lru[tuple[str, ModelRef], Scorer] = field(init=False, repr=False)
    _policies: _Lru[tuple[str, str, str], Policy] = field(init=False, repr=False)
    _explainers: dict[str, tuple[Explainer, ...]] = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        registry = _ReplayRegistry(
            self.services.registry.engine, self.services.registry.models_dir, self.cache_size
        )
        self.services = dataclasses.replace(self.services, registry=registry)
        self._scorers = _Lru(self.cache_size)
        self._policies = _Lru(self.cache_size * 4)
        self._explainers = {}

    @property
    def registry(self) -> ModelRegistry:
        """The registry replay loads model versions through."""
        return self.services.registry

    # -- one decision ----------------------------------------------------------------

    def replay(self, stored: Mapping[str, Any]) -> ReplayReport:
        """Replay one logged decision document (as stored) and compare the result with it."""
        document = self.opener(dict(stored)) if self.opener is not None else stored
        decision_id = str(document.get("decision_id"))
        model = document.get("model")
        policy = document.get("policy")
        policy_ref = (
            {"name": policy.get("name"), "version": policy.get("version")}
            if isinstance(policy, Mapping)
            else None
        )
        base = ReplayReport(decision_id, None, model=model, policy=policy_ref)
        try:
            with self._lock:  # the caches are shared by a process's request threads
                replayed = self._replay(document)
        except Unreplayable as exc:
            return dataclasses.replace(base, reason=exc.reason, detail=exc.detail)
        except (KeyError, TypeError, ValueError) as exc:  # a member missing or of a wrong type
            detail = f"the record cannot be read ({type(exc).__name__}: {exc})"
            return dataclasses.replace(base, reason=NOT_REPLAYABLE, detail=detail)
        differences, deviation = compare(document, replayed)
        return dataclasses.replace(
            base,
            reproduced=not differences,
            differences=tuple(differences),
            max_abs_deviation=deviation,
        )

    def _replay(self, document: Mapping[str, Any]) -> dict[str, Any]:
        application = logged_application(document)
        if application is None:
            raise Unreplayable(ERASED, "the application's personal data has been erased")
        if (
            document.get("status") == "rejected"
            and not application
            and not document.get("timings_ms")
        ):
            raise Unreplayable(
                REJECTED_BEFORE_PIPELINE,
                "the request was refused before the pipeline ran (its body is not logged)",
            )
        name = str(document.get("pipeline"))
        serving = self.pipelines.get(name)
        if serving is None:
            raise Unreplayable(PIPELINE_UNKNOWN, f"no pipeline named {name!r} is configured")
        pipeline = self._pipeline_for(serving, document)
        initial = _context(document, application)
        problem: Problem | None = None
        try:
            ctx = pipeline.run(initial)
        except StageFailed as exc:
            ctx, problem = exc.ctx, internal_error()
        except Problem as exc:  # a stage refusing the request outright
            ctx, problem = initial, exc
        if problem is None and ctx.errors:
            problem = validation_failed(ctx.errors)
        return build_document(ctx, problem)

    # -- the pipeline a decision is replayed through ------------------------------------

    def _pipeline_for(self, serving: Pipeline, document: Mapping[str, Any]) -> Pipeline:
        name = serving.name
        model = document.get("model")
        scorer = self._scorer(name, _model_ref(model)) if model else serving.scorer
        policy = self._policy(name, document.get("policy")) or serving.policy
        explainers = self._explainers_of(name)
        for explainer in explainers:
            try:
                explainer.check_scorer(scorer)
            except ConfigError as exc:
                raise Unreplayable(NOT_REPLAYABLE, f"explainer {explainer.name}: {exc}") from exc
        cursor = _cursor(serving, document)
        stages: list[Stage] = []
        labels = {stage.label for stage in serving.stages}
        explained = iter(explainers)
        for stage in serving.stages:
            if stage.kind == "enricher":
                stages.append(_enricher_stage(stage, cursor, document, labels))
            elif stage.kind == "scorer":
                stages.append(Stage("scorer", scorer, scorer.score))
            elif stage.kind == "explainer":
                explainer = next(explained)
                stages.append(Stage("explainer", explainer, explainer.explain))
            elif stage.kind == "policy":
                stages.append(Stage("policy", policy, policy.decide))
            else:
                stages.append(stage)
        return dataclasses.replace(serving, stages=tuple(stages), scorer=scorer, policy=policy)

    def _scorer(self, pipeline: str, ref: ModelRef) -> Scorer:
        key = (pipeline, ref)
        scorer = self._scorers.get(key)
        if scorer is not None:
            return scorer
        label = f"model {ref.name!r} v{ref.version}"
        try:
            info = self.registry.get(ref.name, version=ref.version)
        except ModelNotFound as exc:
            raise Unreplayable(MODEL_UNAVAILABLE, f"{label} is not registered") from exc
        if info.sha256 != ref.sha256:
            raise Unreplayable(
                MODEL_UNAVAILABLE,
                f"{label}: the registry holds sha256 {info.sha256}, the decision records "
                f"{ref.sha256}",
            )
        try:
            path = self.registry.artifact(info)
        except RegistryError as exc:
            raise Unreplayable(MODEL_UNAVAILABLE, f"{label}: {exc}") from exc
        if not path.is_file():
            raise Unreplayable(MODEL_UNAVAILABLE, f"{label}: its artifact {path} is missing")
        spec = self.specs[pipeline]["scorer"]
        pinned = {"name": spec["name"], "config": {"model": ref.name, "version": ref.version}}
        try:
            built = build_component(
                f"pipelines.{pipeline}.scorer (replay of {label})",
                "scorer",
                pinned,
                self.catalog,
                self.services,
            )
        except ConfigError as exc:
            raise Unreplayable(MODEL_UNAVAILABLE, f"{label}: {exc}") from exc
        assert isinstance(built, Scorer)
        self._scorers[key] = built
        return built

    def _policy(self, pipeline: str, logged: Mapping[str, Any] | None) -> Policy | None:
        if not logged:
            return None  # not decided: the serving policy, if the replay gets that far
        name, version = str(logged["name"]), str(logged["version"])
        key = (pipeline, name, version)
        policy = self._policies.get(key)
        if policy is not None:
            return policy
        stored = self.policies.get(pipeline, name, version)
        if stored is None:
            current = self.specs[pipeline]["policy"]
            if current["name"] != name or policy_version(current) != version:
                raise Unreplayable(
                    POLICY_UNKNOWN,
                    f"policy {name!r} version {version!r} of pipeline {pipeline!r}: its "
                    "settings were never recorded (policy versions are recorded at start)",
                )
            spec: Mapping[str, Any] = current
        else:
            spec = stored.spec
        where = f"pipelines.{pipeline}.policy (replay of version {version!r})"
        try:
            built = build_component(where, "policy", spec, self.catalog, self.services)
        except ConfigError as exc:
            raise Unreplayable(POLICY_UNKNOWN, str(exc)) from exc
        assert isinstance(built, Policy)
        self._policies[key] = built
        return built

    def _explainers_of(self, pipeline: str) -> tuple[Explainer, ...]:
        found = self._explainers.get(pipeline)
        if found is None:
            built = []
            for i, spec in enumerate(self.specs[pipeline].get("explainers", ())):
                where = f"pipelines.{pipeline}.explainers.{i}"
                explainer = build_component(where, "explainer", spec, self.catalog, self.services)
                assert isinstance(explainer, Explainer)
                built.append(explainer)
            found = self._explainers[pipeline] = tuple(built)
        return found

    # -- many decisions ---------------------------------------------------------------

    def replay_many(self, documents: Sequence[Mapping[str, Any]]) -> list[ReplayReport]:
        """Replay each document (grouped by model and policy version, so each version is
        built once however the documents are ordered); reports in the given order."""
        order = sorted(range(len(documents)), key=lambda i: _group_key(documents[i]))
        reports: dict[int, ReplayReport] = {i: self.replay(documents[i]) for i in order}
        return [reports[i] for i in range(len(documents))]


def _group_key(document: Mapping[str, Any]) -> tuple[str, str, str, str]:
    model = document.get("model") or {}
    policy = document.get("policy") or {}
    return (
        str(document.get("pipeline")),
        str(model.get("name", "")),
        str(model.get("version", "")),
        str(policy.get("version", "")),
    )


def _model_ref(model: Mapping[str, Any]) -> ModelRef:
    return ModelRef(
        name=str(model["name"]),
        version=int(model["version"]),
        sha256=str(model["sha256"]),
        kind=str(model["kind"]),
    )


def _context(document: Mapping[str, Any], application: Mapping[str, Any]) -> DecisionContext:
    """A fresh context carrying the logged decision's envelope and application."""
    return DecisionContext(
        decision_id=str(document["decision_id"]),
        request_id=str(document.get("request_id") or ""),
        pipeline=str(document["pipeline"]),
        adapter=str(document.get("adapter") or ""),
        client_id=str(document.get("client_id") or ""),
        received_at=datetime.fromisoformat(str(document["received_at"])),
        application_id=document.get("application_id"),
        idempotency_key=document.get("idempotency_key"),
        request_hash="",
        raw=dict(application),
    )


def _cursor(serving: Pipeline, document: Mapping[str, Any]) -> _Cursor:
    """The logged enrichments, with the fields the recomputable enrichers add.

    Those enrichers are pure, so running each once on the logged features tells which
    fields it adds; every other logged enrichment came from an enricher replay does not
    call again.
    """
    logged = tuple(
        Enrichment(str(e["field"]), e.get("value"), str(e.get("source", "")))
        for e in document.get("enrichments") or ()
    )
    probe = _context(document, {}).evolve(features=dict(document.get("features") or {}))
    fields: set[str] = set()
    for stage in serving.stages:
        component = stage.component
        if stage.kind == "enricher" and isinstance(component, Enricher) and component.recomputable:
            try:
                fields.update(e.field for e in component.enrich(probe).enrichments)
            except Exception:  # it fails the same way in the replay itself
                continue
    notes = tuple(str(n) for n in document.get("referral_notes") or ())
    return _Cursor(logged, frozenset(fields), notes)


def _enricher_stage(
    stage: Stage, cursor: _Cursor, document: Mapping[str, Any], labels: set[str]
) -> Stage:
    """The replay of one enricher stage: re-run if recomputable, else from the log."""
    component = stage.component
    if isinstance(component, Enricher) and component.recomputable:

        def recompute(ctx: DecisionContext) -> DecisionContext:
            out = stage.run(ctx)
            cursor.position += len(out.enrichments) - len(ctx.enrichments)
            return out

        return dataclasses.replace(stage, run=recompute)

    timings = document.get("timings_ms") or {}
    noted = document.get("stage_notes") or {}
    unavailable = {f"{label} unavailable" for label in labels}

    def from_log(ctx: DecisionContext) -> DecisionContext:
        if stage.label not in timings or stage.label in noted:
            # It failed when decided: fail again, so the same fallback (or error) applies.
            raise LoggedStageFailure(f"{stage.label} failed when the decision was made")
        taken = cursor.take_logged()
        notes = ctx.notes
        if not cursor.notes_restored:
            cursor.notes_restored = True
            # Notes the enrichers left (a lookup's fallback "refer"); the engine's own
            # "<stage> unavailable" notes come back by themselves when a stage fails again.
            left = tuple(n for n in cursor.notes if n not in unavailable)
            if left:
                notes = {**notes, "refer": (*notes.get("refer", ()), *left)}
        return ctx.evolve(
            features={**ctx.features, **{e.field: e.value for e in taken}},
            enrichments=(*ctx.enrichments, *taken),
            notes=notes,
        )

    return dataclasses.replace(stage, run=from_log)
