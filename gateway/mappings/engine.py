"""A compiled mapping: a source record in, canonical application fields out, and back.

:meth:`Mapping.apply` reads a source record (a parsed JSON value, or the root element of an
XML document) and returns a :class:`MappingResult`: the canonical fields it could fill, the
fields it could not (left missing, so the pipeline's missing-value policy imputes them), and the
envelope (application id, idempotency key). A value it cannot convert raises
:class:`MappingError` naming the *source path*. :meth:`Mapping.render` shapes a decision document
into the caller's output (a dict, or an XML document). Build one with
:func:`gateway.mappings.load_mapping`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping as MappingABC
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
from lxml import etree

from gateway.errors import FieldError, Problem, validation_failed
from gateway.mappings import transforms as tf
from gateway.mappings.paths import MISSING, AmbiguousPath, JsonPath, XmlPath

SourcePath = JsonPath | XmlPath


class MappingError(Exception):
    """A source record the mapping cannot convert; each error's pointer is a source path."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__("; ".join(f"{e.pointer}: {e.detail}" for e in errors))
        self.errors = tuple(errors)

    def problem(self) -> Problem:
        """The RFC 9457 problem (422) a caller is answered with."""
        return validation_failed(
            self.errors, f"{len(self.errors)} source value(s) could not be mapped"
        )


@dataclass(frozen=True)
class Rule:
    """How one canonical field is read: a path or a constant, then conversions in order:
    code table | (type -> derivation -> unit -> bands)."""

    target: str
    path: SourcePath | None = None
    const: Any = MISSING
    type: str = "string"
    date_pattern: str | None = None
    derive: str | None = None
    unit: Decimal | None = None
    codes: MappingABC[str, Any] | None = None
    code_table: str | None = None
    bands: tuple[tuple[Decimal | None, Any], ...] = ()
    #: The canonical field's type (integer | number | category), once checked against a schema.
    target_type: str | None = None

    @property
    def where(self) -> str:
        return self.path.text if self.path is not None else f"(constant for {self.target})"

    def read(self, record: Any, as_of: date) -> Any:
        """The canonical value, :data:`MISSING` when the source has none; ValueError if bad."""
        if self.path is None:
            return self.const
        raw = self.path.find(record)
        if raw is MISSING or raw is None or (isinstance(raw, float) and math.isnan(raw)):
            return MISSING  # NaN: an empty cell of a data frame (batch files)
        if self.codes is not None:
            key = raw if isinstance(raw, str) else _code_key(raw)
            if key not in self.codes:
                raise _Bad("code", f"{str(raw)[:40]!r} is not in code table {self.code_table}")
            return self.codes[key]
        value = self._typed(raw)
        if self.derive is not None:
            assert isinstance(value, date)
            months = Decimal(tf.months_between(value, as_of))
            value = months if self.derive == "months_since" else Decimal(int(months // 12))
            if value < 0:
                raise _Bad("date", f"{raw!r} is after the as-of date {as_of.isoformat()}")
        if self.unit is not None:
            assert isinstance(value, Decimal)
            value = value * self.unit
        if self.bands:
            assert isinstance(value, Decimal)
            try:
                return tf.band(value, self.bands)
            except ValueError as exc:
                raise _Bad("range", str(exc)) from None
        return self._canonical(value)

    def _typed(self, raw: Any) -> Any:
        try:
            if self.type in ("integer", "number"):
                return tf.parse_number(raw, self.type == "integer")
            if self.type == "date":
                assert self.date_pattern is not None
                return tf.parse_date(raw, self.date_pattern)
            if self.type == "boolean":
                return tf.parse_boolean(raw)
        except ValueError as exc:
            raise _Bad("date" if self.type == "date" else "type", str(exc)) from None
        if not isinstance(raw, str):
            raise _Bad("type", "must be a string")
        return raw

    def _canonical(self, value: Any) -> Any:
        if isinstance(value, Decimal):
            try:
                # an integer field takes the value rounded half up (e.g. cents -> units)
                integer = self.target_type == "integer" or (
                    self.target_type is None and _integral(value)
                )
                return tf.to_json_number(value, integer)
            except ValueError as exc:
                raise _Bad("type", str(exc)) from None
        if isinstance(value, date):
            return value.isoformat()
        return value


class _Bad(ValueError):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


def _code_key(raw: Any) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw)


def _integral(value: Decimal) -> bool:
    return value == value.to_integral_value()


@dataclass(frozen=True)
class MappingResult:
    """What a mapping made of one source record."""

    fields: dict[str, Any]
    #: Canonical fields the mapping did not fill (not mapped, or absent in this record).
    unfilled: tuple[str, ...]
    application_id: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class OutputField:
    """One member of the caller-shaped output: a document path (``reason_codes[*].code``),
    a constant, and an optional code table for the value."""

    name: str
    steps: tuple[str, ...] = ()
    const: Any = MISSING
    codes: MappingABC[str, Any] | None = None

    def values(self, document: MappingABC[str, Any]) -> list[Any]:
        if self.const is not MISSING:
            return [self.const]
        nodes: list[Any] = [document]
        for step in self.steps:
            if step == "*":
                nodes = [item for n in nodes if isinstance(n, list) for item in n]
            else:
                nodes = [n.get(step) for n in nodes if isinstance(n, MappingABC)]
        values = [n for n in nodes if n is not None]
        if self.codes is not None:
            values = [self.codes.get(_code_key(v), v) for v in values]
        return values

    @property
    def repeated(self) -> bool:
        return "*" in self.steps


@dataclass(frozen=True)
class Output:
    """The output section: ``json`` (a dict) or ``xml`` (a root element, optional namespace)."""

    format: str = "json"
    root: str = "Decision"
    namespace: str | None = None
    fields: tuple[OutputField, ...] = ()


@dataclass(frozen=True)
class Mapping:
    """A loaded, checked mapping file (see module docstring)."""

    name: str
    source: str  # json | xml
    file: str
    rules: tuple[tuple[Rule, ...], ...]  # per target: alternatives, the first present wins
    application_id: Rule | None = None
    idempotency_key: Rule | None = None
    idempotency_prefix: str = ""
    as_of: Rule | None = None
    root: str | None = None  # XML: the expected root element ({namespace}local)
    output: Output = field(default_factory=Output)
    #: Every field of the canonical application, once checked against an input schema.
    schema_fields: tuple[str, ...] = ()

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(alts[0].target for alts in self.rules)

    def apply(self, record: Any, today: date | None = None) -> MappingResult:
        """Map ``record``; raises :class:`MappingError` listing every bad source value."""
        errors: list[FieldError] = []
        is_element = isinstance(record, etree._Element)
        if self.root is not None and (not is_element or record.tag != self.root):
            got = record.tag if is_element else type(record).__name__
            raise MappingError(
                [FieldError("/", "root", f"the root element must be {self.root}, not {got}")]
            )
        as_of = today or datetime.now(UTC).date()
        if self.as_of is not None:
            found = _read(self.as_of, record, as_of, errors)
            if isinstance(found, str):
                as_of = date.fromisoformat(found)
        fields: dict[str, Any] = {}
        for alternatives in self.rules:
            for rule in alternatives:
                value = _read(rule, record, as_of, errors)
                if value is not MISSING:
                    fields[rule.target] = value
                    break
        app_id = _read(self.application_id, record, as_of, errors) if self.application_id else None
        key = _read(self.idempotency_key, record, as_of, errors) if self.idempotency_key else None
        if errors:
            raise MappingError(errors)
        known = self.schema_fields or self.targets
        unfilled = tuple(name for name in known if name not in fields)
        return MappingResult(
            fields=fields,
            unfilled=unfilled,
            application_id=None if app_id is None or app_id is MISSING else _str(app_id),
            idempotency_key=None
            if key is None or key is MISSING
            else self.idempotency_prefix + _str(key),
        )

    def render(self, document: MappingABC[str, Any]) -> Any:
        """The decision ``document`` in the caller's shape: a dict (json) or bytes (xml)."""
        out = self.output
        if out.format == "json":
            result: dict[str, Any] = {}
            for f in out.fields:
                values = f.values(document)
                if f.repeated:
                    result[f.name] = values
                elif values:
                    result[f.name] = values[0]
            return result
        ns = f"{{{out.namespace}}}" if out.namespace else ""
        root = etree.Element(ns + out.root, nsmap={None: out.namespace} if out.namespace else None)
        for f in out.fields:
            for value in f.values(document) if f.repeated else f.values(document)[:1]:
                etree.SubElement(root, ns + f.name).text = _xml_text(value)
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _read(rule: Rule, record: Any, as_of: date, errors: list[FieldError]) -> Any:
    try:
        return rule.read(record, as_of)
    except AmbiguousPath as exc:
        errors.append(FieldError(rule.where, "ambiguous", str(exc)))
    except _Bad as exc:
        errors.append(FieldError(rule.where, exc.code, f"{exc} (for {rule.target})"))
    return MISSING


def _str(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _xml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, 6))
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)
