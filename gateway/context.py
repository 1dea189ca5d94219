"""The immutable context that travels through a pipeline.

Each stage receives a :class:`DecisionContext` and returns a new one with what it
added (``ctx.evolve(...)``); nothing is changed in place, so every stage's view is
reproducible and a record can be built from the last context alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.errors import FieldError

Features = Mapping[str, Any]


@dataclass(frozen=True)
class Imputation:
    """A field that was missing in the request and filled in by a validator."""

    field: str
    value: Any
    strategy: str

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "value": self.value, "strategy": self.strategy}


@dataclass(frozen=True)
class Enrichment:
    """A feature an enricher added, with where it came from."""

    field: str
    value: Any
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "value": self.value, "source": self.source}


@dataclass(frozen=True)
class ModelRef:
    """The registered model version that scored a decision."""

    name: str
    version: int
    sha256: str
    kind: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "kind": self.kind,
        }


@dataclass(frozen=True)
class Score:
    """A scorer's output: probability of default and the log-odds it came from."""

    probability: float
    logit: float
    model: ModelRef


@dataclass(frozen=True)
class Explanation:
    """Per-field contributions in log-odds: ``base_value + sum(contributions) == output``."""

    base_value: float
    contributions: Mapping[str, float]
    output: float
    method: str
    #: Contributing fields that were imputed (missing in the request): never a reason alone.
    imputed: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "base_value": self.base_value,
            "output": self.output,
            "contributions": dict(self.contributions),
            "imputed": list(self.imputed),
        }


@dataclass(frozen=True)
class ReasonCode:
    """A principal reason for an adverse outcome."""

    code: str
    field: str
    text: str
    contribution: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "field": self.field,
            "text": self.text,
            "contribution": self.contribution,
        }


@dataclass(frozen=True)
class PolicyDecision:
    """The policy's verdict."""

    outcome: str  # approve | refer | decline
    reason_codes: tuple[ReasonCode, ...]
    policy: str
    version: str
    thresholds: Mapping[str, float]
    reason_table_version: str | None = None
    #: Hard rules that fired (code, field, operator, value, action, imputed).
    rule_hits: tuple[Mapping[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.policy,
            "version": self.version,
            "thresholds": dict(self.thresholds),
            "reason_table_version": self.reason_table_version,
            "rule_hits": [dict(hit) for hit in self.rule_hits],
        }


@dataclass(frozen=True)
class StageRecord:
    """What one stage did, and how long it took."""

    stage: str
    component: str
    elapsed_ms: float
    note: str | None = None


@dataclass(frozen=True)
class DecisionContext:
    """Everything known about one decision so far.

    Built by the adapter from the inbound request, then extended by each stage.
    """

    decision_id: str
    request_id: str
    pipeline: str
    adapter: str
    client_id: str
    received_at: datetime
    application_id: str | None
    idempotency_key: str | None
    request_hash: str
    raw: Features
    features: Features = field(default_factory=dict)
    imputations: tuple[Imputation, ...] = ()
    enrichments: tuple[Enrichment, ...] = ()
    score: Score | None = None
    explanation: Explanation | None = None
    decision: PolicyDecision | None = None
    errors: tuple[FieldError, ...] = ()
    stages: tuple[StageRecord, ...] = ()
    notes: Mapping[str, Any] = field(default_factory=dict)

    def evolve(self, **changes: Any) -> DecisionContext:
        """Return a copy with ``changes`` applied.

        What ``dataclasses.replace`` does, without re-running ``__init__`` over every field:
        a stage evolves the context several times per request, and this is a few times cheaper.
        """
        unknown = changes.keys() - _CONTEXT_FIELDS
        if unknown:
            raise TypeError(f"DecisionContext has no field(s) {', '.join(sorted(unknown))}")
        copy = object.__new__(DecisionContext)
        state = copy.__dict__
        state.update(self.__dict__)
        state.update(changes)
        return copy

    @property
    def rejected(self) -> bool:
        return bool(self.errors)


_CONTEXT_FIELDS = frozenset(f.name for f in dataclasses.fields(DecisionContext))
