"""The kinds of pipeline component a plugin can contribute.

A component is a class with a ``name``, a JSON-Schema ``config_schema`` that the
gateway checks at start, and one method for its stage. The gateway builds one
instance per pipeline that uses it, at start, with the pipeline's settings; per
request it only calls the stage method, so anything costly belongs in ``__init__``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from gateway.context import DecisionContext

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from gateway.outbound.connections import Connections
    from gateway.registry import ModelRegistry

EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}


@dataclass(frozen=True)
class Services:
    """What the gateway lends components when they are built.

    ``config_dir`` resolves relative file names in component settings;
    ``registry`` loads registered model versions; ``connections`` holds the named
    outgoing connections (``connections.get("core-banking")``).
    """

    config_dir: Path
    instance_path: Path
    registry: ModelRegistry
    connections: Connections | None = None
    #: The gateway's database (e.g. for feature-table lookups).
    engine: Engine | None = None

    def resolve(self, name: str | Path) -> Path:
        """A path from a component setting, relative to the config folder."""
        path = Path(name)
        return path if path.is_absolute() else self.config_dir / path


class Component:
    """Base class of every pipeline component."""

    kind: ClassVar[str] = "component"
    #: The name pipelines use for it in config.
    name: ClassVar[str] = ""
    #: JSON Schema of its settings, checked when the gateway starts.
    config_schema: ClassVar[dict[str, Any]] = EMPTY_SCHEMA

    def __init__(self, config: Mapping[str, Any], services: Services) -> None:
        self.config = dict(config)
        self.services = services

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/plugins`` and the pipelines listing show of this instance."""
        return {"kind": self.kind, "name": self.name, "config": self.config}


@dataclass(frozen=True)
class Inbound:
    """A decoded request: the canonical application and its envelope."""

    fields: Mapping[str, Any]
    application_id: str | None = None
    idempotency_key: str | None = None


class Adapter(Component):
    """Turns a caller's protocol into an :class:`Inbound` and a decision back.

    ``decode`` raises :class:`gateway.errors.Problem` for bad input.
    """

    kind = "adapter"
    #: MIME type of ``encode``'s output.
    media_type: ClassVar[str] = "application/json"

    def decode(self, body: bytes, headers: Mapping[str, str]) -> Inbound:
        raise NotImplementedError

    def encode(self, document: Mapping[str, Any]) -> bytes:
        """Encode a decision document (see :mod:`gateway.record`)."""
        raise NotImplementedError

    def check_input_schema(self, schema: Mapping[str, Any]) -> None:
        """Check its settings against the pipeline's input JSON Schema, once at start.

        Raise :class:`~gateway.errors.ConfigError` naming the key (e.g. a mapping onto a
        field the application does not have). Not called when no validator declares a schema.
        """


class Validator(Component):
    """Checks and normalises ``ctx.raw`` into ``ctx.features``.

    Adds :class:`~gateway.errors.FieldError` entries to ``ctx.errors`` to reject;
    records imputations for fields it filled in.
    """

    kind = "validator"

    def validate(self, ctx: DecisionContext) -> DecisionContext:
        raise NotImplementedError

    def validate_many(self, ctxs: Sequence[DecisionContext]) -> list[DecisionContext]:
        """Batch path (a chunk of a file): :meth:`validate` per row unless overridden.

        An override must give exactly what :meth:`validate` gives for each row; if it
        raises, the batch engine falls back to :meth:`validate` row by row.
        """
        return [self.validate(ctx) for ctx in ctxs]

    def input_schema(self) -> dict[str, Any] | None:
        """JSON Schema of the application it accepts (for OpenAPI and WSDL), if known."""
        return None

    def protected_fields(self) -> frozenset[str]:
        """Fields classed as protected: never a model input, never a reason."""
        return frozenset()


class Enricher(Component):
    """Adds features (derived, looked up, fetched) and records what it added."""

    kind = "enricher"
    #: True if its output depends only on the context (a pure computation, like
    #: ``derived``): replay re-runs it and compares. False (the default, and right for
    #: anything that looks up or calls out): replay takes what it added from the log.
    recomputable: ClassVar[bool] = False

    def enrich(self, ctx: DecisionContext) -> DecisionContext:
        raise NotImplementedError

    def enrich_many(self, ctxs: Sequence[DecisionContext]) -> list[DecisionContext]:
        """Batch path: :meth:`enrich` per row unless overridden (same contract as
        :meth:`Validator.validate_many`)."""
        return [self.enrich(ctx) for ctx in ctxs]


class Scorer(Component):
    """Sets ``ctx.score`` from ``ctx.features``."""

    kind = "scorer"

    def score(self, ctx: DecisionContext) -> DecisionContext:
        raise NotImplementedError

    def score_many(self, ctxs: Sequence[DecisionContext]) -> list[DecisionContext]:
        """Batch path: :meth:`score` per row unless overridden (same contract as
        :meth:`Validator.validate_many`); a fast scorer scores the chunk as one frame."""
        return [self.score(ctx) for ctx in ctxs]

    def ready(self) -> bool:
        """True once its model is loaded."""
        return True

    def model_features(self) -> frozenset[str]:
        """The caller fields its model reads (checked against protected fields at start)."""
        return frozenset()

    def model_kind(self) -> str | None:
        """The kind of model it scores with (``logistic``, ``scorecard``, ``hgb``), if any."""
        return None


class Explainer(Component):
    """Sets ``ctx.explanation`` so that base value + contributions = score logit."""

    kind = "explainer"

    def check_scorer(self, scorer: Scorer) -> None:
        """Raise :class:`~gateway.errors.ConfigError` at start if it cannot explain
        ``scorer``'s model (e.g. a linear explainer after a tree model)."""

    def explain(self, ctx: DecisionContext) -> DecisionContext:
        raise NotImplementedError

    def explain_many(self, ctxs: Sequence[DecisionContext]) -> list[DecisionContext]:
        """Batch path: :meth:`explain` per row unless overridden (same contract as
        :meth:`Validator.validate_many`)."""
        return [self.explain(ctx) for ctx in ctxs]


class Policy(Component):
    """Sets ``ctx.decision``: approve, refer or decline, with reason codes."""

    kind = "policy"

    def reason_fields(self) -> frozenset[str]:
        """Fields it may name as reasons (checked against protected fields at start)."""
        return frozenset()

    def check_input_schema(self, schema: Mapping[str, Any]) -> None:
        """Check its settings against the pipeline's input JSON Schema, once at start.

        Raise :class:`~gateway.errors.ConfigError` naming the key (e.g. a hard rule on
        a field the application does not have). Not called when no validator declares
        a schema.
        """

    def decide(self, ctx: DecisionContext) -> DecisionContext:
        raise NotImplementedError

    def decide_many(self, ctxs: Sequence[DecisionContext]) -> list[DecisionContext]:
        """Batch path: :meth:`decide` per row unless overridden (same contract as
        :meth:`Validator.validate_many`)."""
        return [self.decide(ctx) for ctx in ctxs]


COMPONENT_KINDS: dict[str, type[Component]] = {
    "adapter": Adapter,
    "validator": Validator,
    "enricher": Enricher,
    "scorer": Scorer,
    "explainer": Explainer,
    "policy": Policy,
}
