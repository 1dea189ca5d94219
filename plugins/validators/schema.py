"""The schema validator: types, ranges, allowed categories, required fields, imputation.

Its settings name an input-schema file (``config/schemas/*.yaml``) that declares each
field's type, bounds or categories, missing-value policy and data class. Every
problem with a request is reported at once, one :class:`FieldError` per field.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.batch.columns import evolve, exact_floats
from gateway.components import Services, Validator
from gateway.config import load_yaml_file, validate
from gateway.context import DecisionContext, Imputation
from gateway.errors import ConfigError, FieldError
from gateway.hookspecs import hookimpl

POINTER_ROOT = "/applicant/"

_field_schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "missing"],
    "properties": {
        "type": {"enum": ["integer", "number", "category"]},
        "minimum": {"type": "number"},
        "maximum": {"type": "number"},
        "values": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "missing": {
            "oneOf": [
                {"enum": ["reject", "allow"]},
                {
                    "type": "object",
                    "required": ["impute"],
                    "additionalProperties": False,
                    "properties": {"impute": {}},
                },
            ]
        },
        "class": {"enum": ["ordinary", "personal", "protected"]},
        "description": {"type": "string"},
    },
}
INPUT_SCHEMA_FILE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "version", "fields"],
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "string"},
        "codes_file": {"type": "string"},
        "fields": {"type": "object", "minProperties": 1, "additionalProperties": _field_schema},
    },
}


@dataclass(frozen=True)
class FieldSpec:
    """One field of the input schema, compiled for fast checks."""

    name: str
    type: str
    minimum: float | None
    maximum: float | None
    values: frozenset[str] | None
    aliases: Mapping[str, str]
    missing: str  # reject | allow | impute
    impute: Any
    data_class: str

    def check(self, value: Any) -> tuple[Any, FieldError | None]:
        """The normalised value, or an error."""
        pointer = POINTER_ROOT + self.name
        if self.type == "category":
            if not isinstance(value, str):
                return None, FieldError(pointer, "type", "must be a string (a category)")
            value = self.aliases.get(value, value)
            if self.values is not None and value not in self.values:
                return None, FieldError(
                    pointer, "enum", f"not an allowed value; allowed: {sorted(self.values)}"
                )
            return value, None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, FieldError(
                pointer, "type", f"must be a{'n' * (self.type == 'integer')} {self.type}"
            )
        if self.type == "integer" and not isinstance(value, int):
            return None, FieldError(pointer, "type", "must be an integer")
        # an int is finite however large (and math.isfinite overflows on one past a float)
        if isinstance(value, float) and not math.isfinite(value):
            return None, FieldError(pointer, "type", "must be a finite number")
        if self.minimum is not None and value < self.minimum:
            return None, FieldError(pointer, "minimum", f"must be >= {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            return None, FieldError(pointer, "maximum", f"must be <= {self.maximum:g}")
        return value, None

    def json_schema(self) -> dict[str, Any]:
        if self.type == "category":
            values = sorted(self.values or ()) + sorted(self.aliases)
            out: dict[str, Any] = (
                {"type": "string", "enum": values} if values else {"type": "string"}
            )
        else:
            out = {"type": self.type}
            if self.minimum is not None:
                out["minimum"] = self.minimum
            if self.maximum is not None:
                out["maximum"] = self.maximum
        if self.missing != "reject":
            out = {"anyOf": [out, {"type": "null"}]}
        out["x-missing"] = self.missing if self.missing != "impute" else {"impute": self.impute}
        out["x-class"] = self.data_class
        return out


def _check_column(spec: FieldSpec, cells: list[Any]) -> tuple[list[Any], dict[int, FieldError]]:
    """A column's normalised values and its errors by row (missing cells left as ``None``)."""
    values: list[Any] = list(cells)
    slow: list[int] = []
    if spec.type == "category":
        aliases, allowed = spec.aliases, spec.values
        for i, value in enumerate(cells):
            if type(value) is str:
                value = aliases.get(value, value)
                if allowed is None or value in allowed:
                    values[i] = value
                    continue
            if value is not None:
                slow.append(i)
    else:
        array, fast = exact_floats(cells)
        if spec.type == "integer":
            fast &= np.fromiter((type(v) is int for v in cells), dtype=bool, count=len(cells))
        ok = fast & np.isfinite(array)
        if spec.minimum is not None:
            ok &= array >= spec.minimum
        if spec.maximum is not None:
            ok &= array <= spec.maximum
        slow = [i for i in np.flatnonzero(~ok).tolist() if cells[i] is not None]
    bad: dict[int, FieldError] = {}
    for i in slow:  # the single-request check, for its exact value or error
        value, err = spec.check(cells[i])
        if err is None:
            values[i] = value
        else:
            bad[i] = err
            values[i] = None
    return values, bad


def _load_aliases(services: Services, codes_file: str | None) -> dict[str, dict[str, str]]:
    if not codes_file:
        return {}
    path = services.resolve(codes_file)
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise ConfigError(f"codes_file: cannot read {path}: {exc.strerror}") from exc
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        out.setdefault(row["column"], {})[row["code"]] = row["label"]
    return out


class SchemaValidator(Validator):
    """Checks an application against an input-schema file; imputes per field policy."""

    name = "schema"
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["schema"],
        "properties": {"schema": {"type": "string", "description": "input-schema file"}},
    }

    def __init__(self, config: Mapping[str, Any], services: Services) -> None:
        super().__init__(config, services)
        path = services.resolve(self.config["schema"])
        doc = load_yaml_file(path, "schema")
        validate(doc, INPUT_SCHEMA_FILE_SCHEMA, where=f"input schema {path.name}")
        self.schema_name = f"{doc['name']}@{doc['version']}"
        aliases = _load_aliases(services, doc.get("codes_file"))
        self.fields: dict[str, FieldSpec] = {}
        for name, f in doc["fields"].items():
            missing = f["missing"]
            spec = FieldSpec(
                name=name,
                type=f["type"],
                minimum=f.get("minimum"),
                maximum=f.get("maximum"),
                values=frozenset(f["values"]) if "values" in f else None,
                aliases=aliases.get(name, {}),
                missing="impute" if isinstance(missing, dict) else missing,
                impute=missing.get("impute") if isinstance(missing, dict) else None,
                data_class=f.get("class", "ordinary"),
            )
            if spec.missing == "impute":
                _, err = spec.check(spec.impute)
                if err:
                    raise ConfigError(f"{path.name}: fields.{name}.missing.impute: {err.detail}")
            self.fields[name] = spec
        self._known = frozenset(self.fields)
        self._imputations = {
            n: Imputation(n, f.impute, "constant")
            for n, f in self.fields.items()
            if f.missing == "impute"
        }

    def validate(self, ctx: DecisionContext) -> DecisionContext:
        raw = ctx.raw
        errors: list[FieldError] = [
            FieldError(POINTER_ROOT + key, "unknown", "unknown field")
            for key in raw
            if key not in self.fields
        ]
        features: dict[str, Any] = {}
        imputations: list[Imputation] = []
        for name, spec in self.fields.items():
            value = raw.get(name)
            if value is None:
                if spec.missing == "reject":
                    errors.append(FieldError(POINTER_ROOT + name, "required", "is required"))
                elif spec.missing == "impute":
                    features[name] = spec.impute
                    imputations.append(Imputation(name, spec.impute, "constant"))
                else:
                    features[name] = None
                continue
            value, err = spec.check(value)
            if err:
                errors.append(err)
            else:
                features[name] = value
        if errors:
            return ctx.evolve(errors=(*ctx.errors, *errors))
        return ctx.evolve(features=features, imputations=(*ctx.imputations, *imputations))

    def validate_many(self, ctxs: Sequence[DecisionContext]) -> list[DecisionContext]:
        """:meth:`validate` over a chunk, field by field (a column at a time).

        Each column is checked at once: categories by one alias lookup and set test per
        cell, numbers by type in one pass and by range in numpy. Cells off the fast path
        (a wrong type, out of range, not finite, a huge integer) go through the same
        :meth:`FieldSpec.check` as a single request, so each row gets exactly its errors,
        features and imputations, in the same order.
        """
        n = len(ctxs)
        raws = [ctx.raw for ctx in ctxs]
        known = self._known
        errors: list[list[FieldError] | None] = [None] * n
        for i, raw in enumerate(raws):
            if not raw.keys() <= known:
                errors[i] = [
                    FieldError(POINTER_ROOT + key, "unknown", "unknown field")
                    for key in raw
                    if key not in known
                ]
        imputed: list[list[Imputation]] = [[] for _ in range(n)]
        columns: list[list[Any]] = []
        for name, spec in self.fields.items():
            cells = [raw.get(name) for raw in raws]
            values, bad = _check_column(spec, cells)
            for i, value in enumerate(cells):
                if value is None:
                    if spec.missing == "reject":
                        bad[i] = FieldError(POINTER_ROOT + name, "required", "is required")
                    elif spec.missing == "impute":
                        values[i] = spec.impute
                        imputed[i].append(self._imputations[name])
            for i in sorted(bad):
                row_errors = errors[i]
                if row_errors is None:
                    errors[i] = [bad[i]]
                else:
                    row_errors.append(bad[i])
            columns.append(values)
        names = list(self.fields)
        out = []
        for ctx, row, row_errors, imputations in zip(
            ctxs, zip(*columns, strict=True), errors, imputed, strict=True
        ):
            if row_errors:
                out.append(evolve(ctx, errors=(*ctx.errors, *row_errors)))
            else:
                features = dict(zip(names, row, strict=True))
                out.append(
                    evolve(ctx, features=features, imputations=(*ctx.imputations, *imputations))
                )
        return out

    def input_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "title": self.schema_name,
            "additionalProperties": False,
            "required": sorted(n for n, f in self.fields.items() if f.missing == "reject"),
            "properties": {name: spec.json_schema() for name, spec in self.fields.items()},
        }

    def protected_fields(self) -> frozenset[str]:
        return frozenset(n for n, f in self.fields.items() if f.data_class == "protected")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "input_schema": self.schema_name}


@hookimpl
def register_validators() -> list[type[Validator]]:
    return [SchemaValidator]
