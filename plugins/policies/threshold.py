"""The threshold policy: probability bands to approve / refer / decline, with reasons.

- ``probability < approve_below`` -> approve; ``>= decline_at`` -> decline; else refer.
- An upstream stage may force a referral (``ctx.notes["refer"]``), e.g. an enricher
  whose fallback is to refer.
- Refer and decline carry up to ``max_reasons`` principal reasons: the fields with
  the largest adverse (positive log-odds) contributions that have an entry in the
  versioned reason-code table. Imputed fields are never given as a reason, and the
  table may not name a protected attribute (checked at start).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.components import Policy, Services
from gateway.config import load_yaml_file, validate
from gateway.context import DecisionContext, PolicyDecision, ReasonCode
from gateway.errors import ConfigError
from gateway.hookspecs import hookimpl

REASON_TABLE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["table", "version", "codes"],
    "properties": {
        "table": {"type": "string"},
        "version": {"type": "string"},
        "codes": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["code", "text"],
                "properties": {"code": {"type": "string"}, "text": {"type": "string"}},
            },
        },
    },
}


class ThresholdPolicy(Policy):
    """Score bands with principal reasons from a versioned reason-code table."""

    name = "threshold"
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["version", "approve_below", "decline_at", "reason_codes"],
        "properties": {
            "version": {"type": "string", "minLength": 1},
            "approve_below": {"type": "number", "minimum": 0, "maximum": 1},
            "decline_at": {"type": "number", "minimum": 0, "maximum": 1},
            "max_reasons": {"type": "integer", "minimum": 1, "maximum": 4},
            "reason_codes": {"type": "string", "description": "reason-code table file"},
        },
    }

    def __init__(self, config: Mapping[str, Any], services: Services) -> None:
        super().__init__(config, services)
        self.approve_below = float(self.config["approve_below"])
        self.decline_at = float(self.config["decline_at"])
        if self.approve_below > self.decline_at:
            raise ConfigError("approve_below must not exceed decline_at")
        self.version = str(self.config["version"])
        self.max_reasons = int(self.config.get("max_reasons", 4))
        path = services.resolve(self.config["reason_codes"])
        table = load_yaml_file(path, "reason_codes")
        validate(table, REASON_TABLE_SCHEMA, where=f"reason-code table {path.name}")
        self.table_version = f"{table['table']}@{table['version']}"
        self.codes: dict[str, tuple[str, str]] = {
            field: (entry["code"], entry["text"]) for field, entry in table["codes"].items()
        }
        self.thresholds = {"approve_below": self.approve_below, "decline_at": self.decline_at}

    def decide(self, ctx: DecisionContext) -> DecisionContext:
        assert ctx.score is not None, "the policy runs after a scorer"
        p = ctx.score.probability
        if ctx.notes.get("refer") and p < self.decline_at:
            outcome = "refer"
        elif p < self.approve_below:
            outcome = "approve"
        elif p >= self.decline_at:
            outcome = "decline"
        else:
            outcome = "refer"
        reasons = self.reasons(ctx) if outcome != "approve" else ()
        decision = PolicyDecision(
            outcome=outcome,
            reason_codes=reasons,
            policy=self.name,
            version=self.version,
            thresholds=self.thresholds,
            reason_table_version=self.table_version,
        )
        return ctx.evolve(decision=decision)

    def reasons(self, ctx: DecisionContext) -> tuple[ReasonCode, ...]:
        """Up to ``max_reasons`` principal adverse reasons, largest contribution first."""
        if ctx.explanation is None:
            return ()
        imputed = {imp.field for imp in ctx.imputations}
        adverse = sorted(
            (
                (value, field)
                for field, value in ctx.explanation.contributions.items()
                if value > 0 and field in self.codes and field not in imputed
            ),
            reverse=True,
        )
        return tuple(
            ReasonCode(self.codes[field][0], field, self.codes[field][1], value)
            for value, field in adverse[: self.max_reasons]
        )

    def reason_fields(self) -> frozenset[str]:
        return frozenset(self.codes)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "reason_table": self.table_version}


@hookimpl
def register_policies() -> list[type[Policy]]:
    return [ThresholdPolicy]
