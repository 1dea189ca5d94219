"""The threshold policy: probability bands to approve / refer / decline, with reasons.

- ``probability < approve_below`` -> approve; ``>= decline_at`` -> decline; else refer.
- An upstream stage may force a referral (``ctx.notes["refer"]``), e.g. an enricher
  whose fallback is to refer.
- Refer and decline carry up to ``max_reasons`` principal reasons: the fields with
  the largest adverse (positive log-odds) contributions that have an entry in the
  versioned reason-code table. Imputed fields are never given as a reason, and the
  table may not name a protected attribute (checked at start).
- ``reason_codes: model`` (the default when the setting is absent) takes the table
  registered with the model version that scored the decision
  (:mod:`gateway.reason_codes`), so the codes follow the model.
- Hard ``rules`` (:mod:`plugins.policies.rules`) are evaluated beside the score; the
  strictest of band and rule actions wins. Their codes come first among the reasons
  (with contribution 0: they are not model contributions), and every hit is recorded
  in the decision's ``policy.rule_hits``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.components import Policy, Services
from gateway.context import DecisionContext, ModelRef, PolicyDecision, ReasonCode
from gateway.errors import ConfigError
from gateway.hookspecs import hookimpl
from gateway.reason_codes import ReasonTable, load_reason_table, model_reason_table
from plugins.policies.rules import (
    RULES_SCHEMA,
    SEVERITY,
    check_against_schema,
    evaluate,
    parse_rules,
    strictest,
)

#: ``reason_codes: model``: the table registered with the scoring model version.
MODEL_TABLE = "model"


class ThresholdPolicy(Policy):
    """Score bands with principal reasons from a versioned reason-code table."""

    name = "threshold"
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["version", "approve_below", "decline_at"],
        "properties": {
            "version": {"type": "string", "minLength": 1},
            "approve_below": {"type": "number", "minimum": 0, "maximum": 1},
            "decline_at": {"type": "number", "minimum": 0, "maximum": 1},
            "max_reasons": {"type": "integer", "minimum": 1, "maximum": 4},
            "reason_codes": {
                "type": "string",
                "description": "reason-code table file, or 'model' for the model version's table",
            },
            "rules": RULES_SCHEMA,
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
        self._model_tables: dict[ModelRef, ReasonTable] = {}
        self.table_version: str | None = None  # with MODEL_TABLE: the model's, per decision
        self.codes: Mapping[str, tuple[str, str]] = {}
        self.config.setdefault("reason_codes", MODEL_TABLE)
        if self.config["reason_codes"] != MODEL_TABLE:
            table = load_reason_table(services.resolve(self.config["reason_codes"]))
            self.table_version = table.label
            self.codes = table.codes
        self.thresholds = {"approve_below": self.approve_below, "decline_at": self.decline_at}
        self.rules = parse_rules(self.config.get("rules", ()))

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
        hits = evaluate(self.rules, ctx.features, {imp.field for imp in ctx.imputations})
        if hits:
            outcome = strictest(outcome, hits)
            ranked = sorted(hits, key=lambda hit: -SEVERITY[hit.action])  # stable: config order
            rule_reasons = tuple(
                ReasonCode(hit.rule.code, hit.rule.field, hit.rule.text, 0.0) for hit in ranked
            )
            reasons = (*rule_reasons, *reasons)[: self.max_reasons]
        decision = PolicyDecision(
            outcome=outcome,
            reason_codes=reasons,
            policy=self.name,
            version=self.version,
            thresholds=self.thresholds,
            reason_table_version=self.table_for(ctx)[0],
            rule_hits=tuple(hit.as_dict() for hit in hits),
        )
        return ctx.evolve(decision=decision)

    def reasons(self, ctx: DecisionContext) -> tuple[ReasonCode, ...]:
        """Up to ``max_reasons`` principal adverse reasons, largest contribution first."""
        if ctx.explanation is None:
            return ()
        codes = self.table_for(ctx)[1]
        imputed = {imp.field for imp in ctx.imputations}
        adverse = sorted(
            (
                (value, field)
                for field, value in ctx.explanation.contributions.items()
                if value > 0 and field in codes and field not in imputed
            ),
            reverse=True,
        )
        return tuple(
            ReasonCode(codes[field][0], field, codes[field][1], value)
            for value, field in adverse[: self.max_reasons]
        )

    def table_for(self, ctx: DecisionContext) -> tuple[str | None, Mapping[str, tuple[str, str]]]:
        """``(table@version, field -> (code, text))`` for this decision: the configured
        file's, or with ``reason_codes: model`` the scoring model version's."""
        if self.config["reason_codes"] != MODEL_TABLE or ctx.score is None:
            return self.table_version, self.codes
        ref = ctx.score.model
        table = self._model_tables.get(ref)
        if table is None:
            table = model_reason_table(self.services.registry.loaded(ref).info.metadata)
            if table is None:
                raise ConfigError(f"model {ref.name} v{ref.version} has no reason-code table")
            self._model_tables[ref] = table
        return table.label, table.codes

    def reason_fields(self) -> frozenset[str]:
        return frozenset(self.codes) | {rule.field for rule in self.rules}

    def check_input_schema(self, schema: Mapping[str, Any]) -> None:
        check_against_schema(self.rules, schema)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "reason_table": self.table_version}


@hookimpl
def register_policies() -> list[type[Policy]]:
    return [ThresholdPolicy]
