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

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gateway.batch.columns import evolve
from gateway.components import Policy, Services
from gateway.context import DecisionContext, ModelRef, PolicyDecision, ReasonCode
from gateway.errors import ConfigError
from gateway.hookspecs import hookimpl
from gateway.reason_codes import ReasonTable, load_reason_table, model_reason_table
from plugins.policies.rules import (
    RULES_SCHEMA,
    SEVERITY,
    RuleHit,
    check_against_schema,
    evaluate,
    fired_many,
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

    def decide_many(self, ctxs: Sequence[DecisionContext]) -> list[DecisionContext]:
        """:meth:`decide` over a chunk: bands from one probability vector, reasons from one
        contribution matrix (the top ``max_reasons`` adverse fields of every row by one
        ``lexsort``: largest contribution first, ties by field name as :meth:`reasons`
        orders them). Hard rules are evaluated per row, as a single request does."""
        if any(ctx.score is None for ctx in ctxs):
            raise AssertionError("the policy runs after a scorer")
        p = np.array([ctx.score.probability for ctx in ctxs if ctx.score is not None])
        forced = np.array([bool(ctx.notes.get("refer")) for ctx in ctxs], dtype=bool)
        band = np.where(
            p < self.approve_below, "approve", np.where(p >= self.decline_at, "decline", "refer")
        )
        outcomes = np.where(forced & (p < self.decline_at), "refer", band).tolist()
        tables = [self.table_for(ctx) for ctx in ctxs]
        reasons = self._reasons_many(ctxs, outcomes, tables)
        fired = fired_many(self.rules, [ctx.features for ctx in ctxs])
        any_fired: list[bool] = np.asarray(fired.any(axis=1)).tolist()
        fired_rows: list[list[bool]] = fired.tolist()
        out = []
        for i, (ctx, outcome, row_reasons, (table_version, _)) in enumerate(
            zip(ctxs, outcomes, reasons, tables, strict=True)
        ):
            hits: tuple[RuleHit, ...] = ()
            if any_fired[i]:
                imputed = {imp.field for imp in ctx.imputations}
                hits = tuple(
                    RuleHit(rule, rule.field in imputed)
                    for rule, hit in zip(self.rules, fired_rows[i], strict=True)
                    if hit
                )
            if hits:
                outcome = strictest(outcome, hits)
                ranked = sorted(hits, key=lambda hit: -SEVERITY[hit.action])
                rule_reasons = tuple(
                    ReasonCode(hit.rule.code, hit.rule.field, hit.rule.text, 0.0) for hit in ranked
                )
                row_reasons = (*rule_reasons, *row_reasons)[: self.max_reasons]
            decision = PolicyDecision(
                outcome=outcome,
                reason_codes=row_reasons,
                policy=self.name,
                version=self.version,
                thresholds=self.thresholds,
                reason_table_version=table_version,
                rule_hits=tuple(hit.as_dict() for hit in hits),
            )
            out.append(evolve(ctx, decision=decision))
        return out

    def _reasons_many(
        self,
        ctxs: Sequence[DecisionContext],
        outcomes: Sequence[str],
        tables: Sequence[tuple[str | None, Mapping[str, tuple[str, str]]]],
    ) -> list[tuple[ReasonCode, ...]]:
        """:meth:`reasons` of every row not approved by its band, as one matrix."""
        out: list[tuple[ReasonCode, ...]] = [()] * len(ctxs)
        rows = [
            i
            for i, ctx in enumerate(ctxs)
            if outcomes[i] != "approve" and ctx.explanation is not None
        ]
        if not rows:
            return out
        first = ctxs[rows[0]].explanation
        assert first is not None
        names = list(first.contributions)
        codes = tables[rows[0]][1]
        same = [
            i
            for i in rows
            if tables[i][1] is codes and list(ctxs[i].explanation.contributions) == names  # type: ignore[union-attr]
        ]
        for i in set(rows) - set(same):  # another table or other fields: one at a time
            out[i] = self.reasons(ctxs[i])
        if not same or not names:
            return out
        column = {name: j for j, name in enumerate(names)}
        values = np.array(
            [list(ctxs[i].explanation.contributions.values()) for i in same],  # type: ignore[union-attr]
            dtype=np.float64,
        )
        eligible = (values > 0) & np.array([name in codes for name in names])[None, :]
        for k, i in enumerate(same):
            for imp in ctxs[i].imputations:
                j = column.get(imp.field)
                if j is not None:
                    eligible[k, j] = False
        ranked = np.where(eligible, values, -np.inf)
        by_name = np.argsort(np.argsort(np.array(names, dtype=object)))  # rank of each name
        order = np.lexsort((-np.broadcast_to(by_name, ranked.shape), -ranked), axis=-1)
        top = order[:, : self.max_reasons]
        chosen = np.take_along_axis(eligible, top, axis=-1)
        for k, i in enumerate(same):
            out[i] = tuple(
                ReasonCode(codes[names[j]][0], names[j], codes[names[j]][1], float(values[k, j]))
                for j, keep in zip(top[k].tolist(), chosen[k].tolist(), strict=True)
                if keep
            )
        return out

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
