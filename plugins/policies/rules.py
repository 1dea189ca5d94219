"""Hard rules: conditions on an application that refer or decline whatever the score.

A rule is data, declared in a policy's settings::

    rules:
      - {code: H02, field: age_in_years, operator: lt, value: 18, action: decline,
         text: "Applicant is under the age of majority"}

Operators are a fixed table of comparisons (``lt le gt ge eq in``): nothing in a rule
is ever evaluated as code. Rules are checked when the gateway starts: operator and
value must fit each other and the field's type in the pipeline's input schema, codes
are unique, and a rule on a protected attribute refuses to start (through the
policy's ``reason_fields``).

Per decision every rule is evaluated on the validated features; each hit is recorded.
The strictest action wins (decline > refer > approve) against the score band. A hit
on a value the validator *imputed* refers instead of declining: an adverse decision
never rests on an assumed value alone.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.batch.columns import exact_floats
from gateway.errors import ConfigError

#: Outcomes from mildest to strictest; the strictest of score band and rule hits wins.
SEVERITY = {"approve": 0, "refer": 1, "decline": 2}


def _member(value: Any, allowed: Any) -> bool:
    return value in allowed


OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "eq": operator.eq,
    "in": _member,
}
ORDERING = frozenset({"lt", "le", "gt", "ge"})

_scalar = {"type": ["number", "string", "boolean"]}

#: JSON Schema of the ``rules`` setting (one item per rule).
RULES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "maxItems": 100,
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["code", "field", "operator", "value", "action", "text"],
        "properties": {
            "code": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,20}$"},
            "field": {"type": "string", "minLength": 1},
            "operator": {"enum": sorted(OPERATORS)},
            "value": {
                "oneOf": [
                    _scalar,
                    {"type": "array", "items": _scalar, "minItems": 1, "maxItems": 1000},
                ]
            },
            "action": {"enum": ["refer", "decline"]},
            "text": {"type": "string", "minLength": 1, "maxLength": 300},
        },
    },
}


@dataclass(frozen=True)
class HardRule:
    """One declared rule, checked and ready to evaluate."""

    code: str
    field: str
    operator: str
    value: Any
    action: str
    text: str

    def matches(self, actual: Any) -> bool:
        """True when ``actual`` meets the condition; a missing value never does."""
        if actual is None:
            return False
        if self.operator in ORDERING and (
            isinstance(actual, bool) or not isinstance(actual, int | float)
        ):
            return False  # an ordering on a non-number is refused at start; never guess here
        return OPERATORS[self.operator](actual, self.value)


@dataclass(frozen=True)
class RuleHit:
    """A rule that fired for one decision, and the action it took."""

    rule: HardRule
    imputed: bool

    @property
    def action(self) -> str:
        """The action applied: a decline on an imputed value is softened to refer."""
        return "refer" if self.imputed and self.rule.action == "decline" else self.rule.action

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.rule.code,
            "field": self.rule.field,
            "operator": self.rule.operator,
            "value": list(self.rule.value) if self.rule.operator == "in" else self.rule.value,
            "action": self.action,
            "imputed": self.imputed,
        }


def parse_rules(items: Sequence[Mapping[str, Any]], where: str = "rules") -> tuple[HardRule, ...]:
    """Rules from settings already checked against :data:`RULES_SCHEMA`.

    Raises :class:`ConfigError` naming the rule for what a schema cannot say: an
    ordering against a non-number, ``in`` without a list (or a list elsewhere), or a
    code used twice.
    """
    rules: list[HardRule] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        key = f"{where}.{i}"
        op, value = item["operator"], item["value"]
        if op == "in":
            if not isinstance(value, list):
                raise ConfigError(f"{key}.value: the 'in' operator needs a list of values")
            value = tuple(value)
        elif isinstance(value, list):
            raise ConfigError(f"{key}.value: a list is only allowed with the 'in' operator")
        elif op in ORDERING and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ConfigError(f"{key}.value: operator {op!r} needs a number")
        if item["code"] in seen:
            raise ConfigError(f"{key}.code: code {item['code']!r} is used by another rule")
        seen.add(item["code"])
        rules.append(HardRule(item["code"], item["field"], op, value, item["action"], item["text"]))
    return tuple(rules)


def _json_types(value: Any) -> set[str]:
    """The JSON Schema types ``value`` satisfies."""
    if isinstance(value, bool):
        return {"boolean"}
    if isinstance(value, int):
        return {"integer", "number"}
    if isinstance(value, float):
        return {"number", "integer"} if value.is_integer() else {"number"}
    return {"string"} if isinstance(value, str) else set()


def _types_and_values(spec: Mapping[str, Any]) -> tuple[set[str], list[Any] | None]:
    """JSON types and allowed values of a property, through a nullable ``anyOf``."""
    types: set[str] = set()
    allowed: list[Any] | None = None
    for branch in (spec, *spec.get("anyOf", ())):
        declared = branch.get("type", ())
        types.update({declared} if isinstance(declared, str) else declared)
        if "enum" in branch:
            allowed = [*(allowed or ()), *branch["enum"]]
    return types, allowed


def check_against_schema(
    rules: Sequence[HardRule], schema: Mapping[str, Any], where: str = "rules"
) -> None:
    """Refuse rules on fields the input ``schema`` (JSON Schema) lacks or cannot satisfy."""
    properties: Mapping[str, Any] = schema.get("properties") or {}
    for i, rule in enumerate(rules):
        key = f"{where}.{i}"
        spec = properties.get(rule.field)
        if spec is None:
            known = ", ".join(sorted(properties))
            raise ConfigError(f"{key}.field: unknown field {rule.field!r} (known: {known})")
        types, allowed = _types_and_values(spec)
        if rule.operator in ORDERING and not types & {"integer", "number"}:
            raise ConfigError(f"{key}.operator: {rule.operator!r} needs a numeric field")
        values = rule.value if rule.operator == "in" else (rule.value,)
        misfits = sorted(str(v) for v in values if not types & _json_types(v))
        if misfits:
            wanted = "/".join(sorted(types - {"null"}))
            raise ConfigError(f"{key}.value: {rule.field} holds {wanted}, not {misfits}")
        if allowed is not None:
            unknown = sorted(str(v) for v in values if v not in allowed)
            if unknown:
                raise ConfigError(f"{key}.value: not a value of {rule.field}: {unknown}")


def evaluate(
    rules: Sequence[HardRule], features: Mapping[str, Any], imputed: frozenset[str] | set[str]
) -> tuple[RuleHit, ...]:
    """Every rule that fires on ``features``, in declaration order."""
    return tuple(
        RuleHit(rule, rule.field in imputed)
        for rule in rules
        if rule.matches(features.get(rule.field))
    )


def fired_many(rules: Sequence[HardRule], features: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """``(rows, rules)`` booleans: which rules fire on each row's features, as
    :meth:`HardRule.matches` decides. An ordering on exact numbers (and a bound that is one)
    is one numpy comparison over the column; any other cell is matched one by one."""
    fired = np.zeros((len(features), len(rules)), dtype=bool)
    compare = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal}
    for j, rule in enumerate(rules):
        cells = [f.get(rule.field) for f in features]
        bound, bound_ok = exact_floats([rule.value])
        if rule.operator in ORDERING and bound_ok[0]:
            values, fast = exact_floats(cells)
            fired[:, j] = fast & compare[rule.operator](values, bound[0])
            slow: Sequence[int] = np.flatnonzero(~fast).tolist()
        else:
            slow = range(len(cells))
        for i in slow:
            fired[i, j] = rule.matches(cells[i])
    return fired


def strictest(outcome: str, hits: Sequence[RuleHit]) -> str:
    """The strictest of the score band's ``outcome`` and the hits' actions."""
    return max((outcome, *(hit.action for hit in hits)), key=SEVERITY.__getitem__)
