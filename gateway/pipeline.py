"""Pipelines declared in config, and the engine that runs one.

A pipeline is an ordered list of stages built once at start: validators, enrichers,
the scorer, explainers and the policy (order as declared, never pluggy's). Running
one threads an immutable :class:`~gateway.context.DecisionContext` through the
stages, recording each stage's time, and stops early when a validator rejects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import structlog

from gateway.components import (
    Adapter,
    Component,
    Enricher,
    Explainer,
    Policy,
    Scorer,
    Services,
    Validator,
)
from gateway.config import validate
from gateway.context import DecisionContext, StageRecord
from gateway.errors import ConfigError, Problem
from gateway.plugin_manager import ComponentEntry
from gateway.shadow import ShadowModel

log = structlog.get_logger(__name__)

StageFn = Callable[[DecisionContext], DecisionContext]


class StageFailed(Exception):
    """A stage raised unexpectedly; the decision is recorded as an error."""

    def __init__(self, stage: str, ctx: DecisionContext) -> None:
        super().__init__(f"stage {stage} failed")
        self.stage = stage
        self.ctx = ctx


@dataclass(frozen=True)
class Stage:
    """One step of a pipeline: a component and the method that runs it."""

    kind: str
    component: Component
    run: StageFn
    on_error: str = "fail"  # enrichers: fail | skip | refer

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.component.name}"


@dataclass(frozen=True)
class Pipeline:
    """A built pipeline: its adapters and its stages in order."""

    name: str
    description: str
    adapters: Mapping[str, Adapter]
    stages: tuple[Stage, ...]
    validators: tuple[Validator, ...]
    scorer: Scorer
    policy: Policy
    #: Models scoring its decided requests off the response path (:mod:`gateway.shadow`).
    shadows: tuple[ShadowModel, ...] = ()

    def run(self, ctx: DecisionContext) -> DecisionContext:
        """Run every stage on ``ctx``; raise :class:`StageFailed` on an unexpected error."""
        for stage in self.stages:
            started = perf_counter()
            note = None
            try:
                ctx = stage.run(ctx)
            except Problem:
                raise  # a stage refusing the request outright: the caller's error, not ours
            except Exception as exc:
                if stage.on_error == "fail":
                    log.error("stage_failed", stage=stage.label, error=type(exc).__name__)
                    raise StageFailed(stage.label, ctx) from exc
                note = f"failed ({type(exc).__name__}); fallback: {stage.on_error}"
                log.warning("stage_fallback", stage=stage.label, error=type(exc).__name__)
                if stage.on_error == "refer":
                    reasons = (*ctx.notes.get("refer", ()), f"{stage.label} unavailable")
                    ctx = ctx.evolve(notes={**ctx.notes, "refer": reasons})
            elapsed = (perf_counter() - started) * 1000.0
            record = StageRecord(stage.label, stage.component.name, round(elapsed, 4), note)
            ctx = ctx.evolve(stages=(*ctx.stages, record))
            if ctx.errors:
                break
        return ctx

    def input_schema(self) -> dict[str, Any] | None:
        """JSON Schema of the application this pipeline accepts (first validator's)."""
        for validator in self.validators:
            schema = validator.input_schema()
            if schema is not None:
                return schema
        return None

    def ready(self) -> bool:
        return self.scorer.ready()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "adapters": sorted(self.adapters),
            "stages": [
                {**stage.component.describe(), "on_error": stage.on_error}
                if stage.kind == "enricher"
                else stage.component.describe()
                for stage in self.stages
            ],
        }


def _build(
    where: str,
    kind: str,
    spec: Mapping[str, Any],
    catalog: Mapping[str, Mapping[str, ComponentEntry]],
    services: Services,
) -> Component:
    name = spec["name"]
    entry = catalog[kind].get(name)
    if entry is None:
        known = ", ".join(sorted(catalog[kind])) or "none"
        raise ConfigError(f"{where}: unknown {kind} {name!r} (known: {known})")
    settings = spec.get("config") or {}
    validate(settings, entry.cls.config_schema, where=f"{where} ({kind} {name}) config")
    try:
        return entry.cls(settings, services)
    except Exception as exc:  # any failure to build a component refuses to start, located
        raise ConfigError(f"{where} ({kind} {name}): {exc}") from exc


def build_component(
    where: str,
    kind: str,
    spec: Mapping[str, Any],
    catalog: Mapping[str, Mapping[str, ComponentEntry]],
    services: Services,
) -> Component:
    """One component from its ``{name, config}`` spec, exactly as a pipeline builds it
    at start (schema check, then the class); a bad spec raises :class:`ConfigError`
    located at ``where``. Replay rebuilds logged versions through this too."""
    return _build(where, kind, spec, catalog, services)


def build_pipeline(
    name: str,
    spec: Mapping[str, Any],
    catalog: Mapping[str, Mapping[str, ComponentEntry]],
    services: Services,
) -> Pipeline:
    """Build one pipeline from its config; a bad entry raises :class:`ConfigError`."""
    where = f"pipelines.{name}"
    adapters: dict[str, Adapter] = {}
    for i, item in enumerate(spec["adapters"]):
        # a plain name, or {name, config} for an adapter with settings
        adapter_spec = {"name": item} if isinstance(item, str) else item
        if adapter_spec["name"] in adapters:
            raise ConfigError(f"{where}.adapters.{i}: adapter {adapter_spec['name']!r} repeated")
        comp = _build(f"{where}.adapters.{i}", "adapter", adapter_spec, catalog, services)
        adapters[adapter_spec["name"]] = comp  # type: ignore[assignment]

    stages: list[Stage] = []
    validators: list[Validator] = []
    for i, item in enumerate(spec.get("validators", ())):
        v: Validator = _build(f"{where}.validators.{i}", "validator", item, catalog, services)  # type: ignore[assignment]
        validators.append(v)
        stages.append(Stage("validator", v, v.validate))
    for i, item in enumerate(spec.get("enrichers", ())):
        e: Enricher = _build(f"{where}.enrichers.{i}", "enricher", item, catalog, services)  # type: ignore[assignment]
        stages.append(Stage("enricher", e, e.enrich, item.get("on_error", "fail")))
    scorer: Scorer = _build(f"{where}.scorer", "scorer", spec["scorer"], catalog, services)  # type: ignore[assignment]
    stages.append(Stage("scorer", scorer, scorer.score))
    for i, item in enumerate(spec.get("explainers", ())):
        x: Explainer = _build(f"{where}.explainers.{i}", "explainer", item, catalog, services)  # type: ignore[assignment]
        try:
            x.check_scorer(scorer)  # a mismatched explainer refuses to start, not per request
        except ConfigError as exc:
            raise ConfigError(f"{where}.explainers.{i} (explainer {x.name}): {exc}") from exc
        stages.append(Stage("explainer", x, x.explain))
    policy: Policy = _build(f"{where}.policy", "policy", spec["policy"], catalog, services)  # type: ignore[assignment]
    stages.append(Stage("policy", policy, policy.decide))

    protected = frozenset().union(*(v.protected_fields() for v in validators))
    for what, fields in (
        ("model", scorer.model_features()),
        ("reason table", policy.reason_fields()),
    ):
        if fields & protected:
            names = ", ".join(sorted(fields & protected))
            raise ConfigError(f"{where}: the {what} uses protected attribute(s): {names}")
    input_schema = next((s for v in validators if (s := v.input_schema()) is not None), None)
    if input_schema is not None:
        try:
            policy.check_input_schema(input_schema)
        except ConfigError as exc:
            raise ConfigError(f"{where}.policy.config.{exc}") from exc
        for i, adapter in enumerate(adapters.values()):
            try:
                adapter.check_input_schema(input_schema)
            except ConfigError as exc:
                raise ConfigError(f"{where}.adapters.{i} (adapter {adapter.name}): {exc}") from exc

    shadows = []
    for i, item in enumerate(spec.get("shadow", ())):
        try:
            shadows.append(ShadowModel(item, services.registry))
        except Exception as exc:
            raise ConfigError(f"{where}.shadow.{i}: {exc}") from exc

    return Pipeline(
        name=name,
        description=spec.get("description", ""),
        adapters=adapters,
        stages=tuple(stages),
        validators=tuple(validators),
        scorer=scorer,
        policy=policy,
        shadows=tuple(shadows),
    )


def build_pipelines(
    config: Mapping[str, Any],
    catalog: Mapping[str, Mapping[str, ComponentEntry]],
    services: Services,
) -> dict[str, Pipeline]:
    """Every pipeline of the configuration, built and checked."""
    return {
        name: build_pipeline(name, spec, catalog, services)
        for name, spec in config["pipelines"].items()
    }
