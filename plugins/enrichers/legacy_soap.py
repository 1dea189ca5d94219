"""The ``soap-lookup`` enricher: features from a legacy SOAP service, never a hung decision.

Settings::

    connection: core-banking            # a named connection under `connections:`
    operation: GetCustomerProfile       # an operation of its WSDL
    request:                            # operation argument: application field
      customerId: customer_id
    response:                           # new feature: path in the reply (dots for nesting)
      bank_relationship_years: relationshipYears
    budget_ms: 300                      # the whole call, retries included
    fallback: missing                   # or refer

Every added feature is recorded as an enrichment whose source says where it came
from: ``soap:<connection>:<operation>`` (``(cache)`` appended for a cached answer),
or ``soap:<connection>:fallback(<reason>)`` when the call gave no answer, in which case
the features are added as ``None`` and, with ``fallback: refer``, the decision is
referred to human review with a note saying why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from gateway.components import Enricher, Services
from gateway.context import DecisionContext, Enrichment
from gateway.errors import ConfigError
from gateway.hookspecs import hookimpl
from gateway.outbound.calls import CallFailed

log = structlog.get_logger(__name__)

_MISSING = object()


def lookup(value: Any, path: str) -> Any:
    """``value`` followed along the dotted ``path``; ``None`` where it leads nowhere."""
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
        if value is _MISSING:
            return None
    return value


class SoapLookup(Enricher):
    """Adds features answered by an operation of a named outgoing SOAP connection."""

    name = "soap-lookup"
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["connection", "operation", "request", "response"],
        "properties": {
            "connection": {"type": "string", "minLength": 1},
            "operation": {"type": "string", "minLength": 1},
            "request": {
                "type": "object",
                "minProperties": 1,
                "description": "operation argument: application field",
                "additionalProperties": {"type": "string", "minLength": 1},
            },
            "response": {
                "type": "object",
                "minProperties": 1,
                "description": "new feature: dotted path in the reply",
                "propertyNames": {"pattern": "^[a-z_][a-z0-9_]*$"},
                "additionalProperties": {"type": "string", "minLength": 1},
            },
            "budget_ms": {"type": "number", "exclusiveMinimum": 0, "maximum": 60000},
            "fallback": {"enum": ["missing", "refer"]},
        },
    }

    def __init__(self, config: Mapping[str, Any], services: Services) -> None:
        super().__init__(config, services)
        if services.connections is None:
            raise ConfigError("connection: no outgoing connections are configured")
        try:
            self.connection = services.connections.get(self.config["connection"])
        except ConfigError as exc:
            raise ConfigError(f"connection: {exc}") from None
        self.operation = str(self.config["operation"])
        known = self.connection.operations()
        if self.operation not in known:
            raise ConfigError(
                f"operation: {self.operation!r} is not an operation of connection "
                f"{self.connection.name!r} (known: {', '.join(sorted(known))})"
            )
        self.request: dict[str, str] = dict(self.config["request"])
        arguments = self.connection.arguments(self.operation)
        unknown = sorted(set(self.request) - arguments) if arguments is not None else []
        if unknown:
            raise ConfigError(
                f"request.{unknown[0]}: not an argument of {self.operation} "
                f"(arguments: {', '.join(sorted(arguments or ()))})"
            )
        self.response: dict[str, str] = dict(self.config["response"])
        self.budget_ms = float(self.config.get("budget_ms", 500))
        self.fallback = str(self.config.get("fallback", "missing"))
        self.source = f"soap:{self.connection.name}:{self.operation}"

    def enrich(self, ctx: DecisionContext) -> DecisionContext:
        args = {arg: ctx.features.get(field) for arg, field in self.request.items()}
        if any(value is None for value in args.values()):
            return self._fall_back(ctx, "missing-input")
        try:
            result = self.connection.call(
                self.operation, args, correlation_id=ctx.request_id, budget_ms=self.budget_ms
            )
        except CallFailed as exc:
            return self._fall_back(ctx, exc.reason)
        except Exception as exc:  # never let a legacy service fail the decision
            log.error(
                "soap_lookup_error", connection=self.connection.name, error=type(exc).__name__
            )
            return self._fall_back(ctx, "error")
        source = f"{self.source}(cache)" if result.cached else self.source
        added = {feature: lookup(result.value, path) for feature, path in self.response.items()}
        return self._add(ctx, added, source)

    def _fall_back(self, ctx: DecisionContext, reason: str) -> DecisionContext:
        source = f"soap:{self.connection.name}:fallback({reason})"
        ctx = self._add(ctx, dict.fromkeys(self.response), source)
        if self.fallback == "refer":
            note = f"{self.name}: {self.connection.name}.{self.operation} gave no answer ({reason})"
            ctx = ctx.evolve(notes={**ctx.notes, "refer": (*ctx.notes.get("refer", ()), note)})
        return ctx

    @staticmethod
    def _add(ctx: DecisionContext, added: dict[str, Any], source: str) -> DecisionContext:
        enrichments = tuple(Enrichment(k, v, source) for k, v in added.items())
        return ctx.evolve(
            features={**ctx.features, **added}, enrichments=(*ctx.enrichments, *enrichments)
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "connection": self.connection.describe()}


@hookimpl
def register_enrichers() -> list[type[Enricher]]:
    return [SoapLookup]
