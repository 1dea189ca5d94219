"""Loading mapping files (``config/mappings/*.yaml``) and checking them before the gateway starts.

A mapping file::

    name: mismo-3.4
    source: xml                        # xml | json
    namespaces: {m: "http://www.mismo.org/residential/2009/schemas"}
    root: m:MESSAGE                    # xml: the root element it accepts
    as_of: {path: ..., type: date, format: iso-datetime}   # for ages; absent: today (UTC)
    application_id: {path: ...}
    idempotency_key: {path: ..., prefix: "idoc-"}          # optional
    code_tables:
      housing: {values: {Own: own, Rent: rent}}             # inline
      purpose: {csv: codes/german_credit_codes.csv, column: purpose}
    fields:                                                # canonical field <- rule(s)
      credit_amount: {path: ..., type: number, unit: {from: cents, to: units}}
      age_in_years: {path: ..., type: date, format: sap-dats, derive: years_since}
      duration_in_month: [{path: A, type: integer}, {path: B, type: integer,
                           unit: {from: years, to: months}}]   # first one present wins
      property: {const: real estate}
    output: {format: xml, root: LoanDecision, fields: [{name: Outcome, value: outcome}]}

Every error names the file and the key, and refuses to start (:class:`ConfigError`).
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from dataclasses import replace
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import jsonschema
from lxml import etree

from gateway.config import load_yaml_file, validate
from gateway.errors import ConfigError
from gateway.mappings import transforms as tf
from gateway.mappings.engine import Mapping, Output, OutputField, Rule
from gateway.mappings.paths import (
    MISSING,
    PathSyntaxError,
    compile_json_path,
    compile_xml_path,
)

_rule: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "path": {"type": "string"},
        "const": {},
        "type": {"enum": list(tf.SOURCE_TYPES)},
        "format": {"type": "string"},
        "derive": {"enum": list(tf.DERIVATIONS)},
        "unit": {
            "type": "object",
            "required": ["from", "to"],
            "additionalProperties": False,
            "properties": {"from": {"type": "string"}, "to": {"type": "string"}},
        },
        "codes": {"type": "string"},
        "bands": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["value"],
                "additionalProperties": False,
                "properties": {"below": {"type": "number"}, "value": {}},
            },
        },
        "prefix": {"type": "string"},
    },
}
MAPPING_FILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "source", "fields"],
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "source": {"enum": ["json", "xml"]},
        "namespaces": {"type": "object", "additionalProperties": {"type": "string"}},
        "root": {"type": "string"},
        "as_of": _rule,
        "application_id": _rule,
        "idempotency_key": _rule,
        "code_tables": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "values": {"type": "object", "minProperties": 1},
                    "csv": {"type": "string"},
                    "column": {"type": "string"},
                },
                "oneOf": [{"required": ["values"]}, {"required": ["csv"]}],
            },
        },
        "fields": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "oneOf": [_rule, {"type": "array", "minItems": 1, "items": _rule}]
            },
        },
        "output": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "format": {"enum": ["json", "xml"]},
                "root": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_.\\-]*$"},
                "namespace": {"type": "string"},
                "fields": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_.\\-]*$"},
                            "value": {"type": "string"},
                            "const": {},
                            "codes": {"type": "object"},
                        },
                        "oneOf": [{"required": ["value"]}, {"required": ["const"]}],
                    },
                },
            },
        },
    },
}

#: Top-level members of the decision document (gateway.record.build_document) an output may read.
DOCUMENT_MEMBERS = frozenset(
    {
        "decision_id",
        "request_id",
        "pipeline",
        "adapter",
        "client_id",
        "application_id",
        "idempotency_key",
        "received_at",
        "decided_at",
        "status",
        "status_code",
        "outcome",
        "probability_of_default",
        "model",
        "policy",
        "reason_codes",
        "explanation",
        "imputations",
        "enrichments",
        "referral_notes",
        "errors",
        "error",
        "timings_ms",
        "stage_notes",
    }
)


def load_mapping(
    path: str | Path, config_dir: Path, input_schema: MappingABC[str, Any] | None = None
) -> Mapping:
    """The mapping in ``path`` (relative to ``config_dir``), checked; :class:`ConfigError`
    naming the file and key otherwise. With ``input_schema`` (the pipeline's JSON Schema),
    its targets and constant values are checked too (see :func:`check_targets`)."""
    file = Path(path)
    file = file if file.is_absolute() else config_dir / file
    where = f"mapping {file.name}"
    doc = load_yaml_file(file, where)
    validate(doc, MAPPING_FILE_SCHEMA, where=where)
    mapping = _compile(doc, file, config_dir)
    return check_targets(mapping, input_schema) if input_schema is not None else mapping


def check_targets(mapping: Mapping, input_schema: MappingABC[str, Any]) -> Mapping:
    """``mapping`` bound to a pipeline's input JSON Schema: every target must be a field of
    it, and every constant, code-table value and band value must be valid for its field."""
    where = f"mapping {Path(mapping.file).name}"
    props: MappingABC[str, Any] = input_schema.get("properties", {})
    rules = []
    for alternatives in mapping.rules:
        target = alternatives[0].target
        if target not in props:
            raise ConfigError(f"{where}: fields.{target}: not a field of the pipeline's input")
        checker = jsonschema.Draft202012Validator(props[target])
        kind = _field_type(props[target])
        bound = []
        for i, rule in enumerate(alternatives):
            key = f"fields.{target}" + (f".{i}" if len(alternatives) > 1 else "")
            produced = [rule.const] if rule.const is not MISSING else []
            produced += list(rule.codes.values()) if rule.codes else []
            produced += [v for _, v in rule.bands]
            for value in produced:
                if not checker.is_valid(value):
                    raise ConfigError(f"{where}: {key}: {value!r} is not a valid {target}")
            plain = rule.codes is None and not rule.bands and rule.path is not None
            if kind == "category" and plain and rule.type != "string":
                raise ConfigError(f"{where}: {key}.type: {target} takes a category (string)")
            bound.append(replace(rule, target_type=kind))
        rules.append(tuple(bound))
    return replace(mapping, rules=tuple(rules), schema_fields=tuple(props))


def _field_type(prop: MappingABC[str, Any]) -> str | None:
    for option in (prop, *prop.get("anyOf", ())):
        kind = option.get("type")
        if kind in ("integer", "number"):
            return str(kind)
        if kind == "string":
            return "category"
    return None


def _compile(doc: MappingABC[str, Any], file: Path, config_dir: Path) -> Mapping:
    where = f"mapping {file.name}"
    source = doc["source"]
    namespaces = dict(doc.get("namespaces") or {})
    tables: dict[str, MappingABC[str, Any]] = {}
    for name, spec in (doc.get("code_tables") or {}).items():
        if "values" in spec:
            tables[name] = {str(k): v for k, v in spec["values"].items()}
            continue
        try:
            tables[name] = tf.load_code_csv(config_dir / spec["csv"], spec.get("column"))
        except OSError as exc:
            raise ConfigError(f"{where}: code_tables.{name}.csv: {exc.strerror}") from exc
        except ValueError as exc:
            raise ConfigError(f"{where}: code_tables.{name}.csv: {exc}") from exc

    def rule(target: str, spec: MappingABC[str, Any], key: str) -> Rule:
        return _compile_rule(target, spec, key, source, namespaces, tables, where)

    rules = []
    for target, spec in doc["fields"].items():
        specs = spec if isinstance(spec, list) else [spec]
        rules.append(
            tuple(
                rule(target, s, f"fields.{target}" + (f".{i}" if len(specs) > 1 else ""))
                for i, s in enumerate(specs)
            )
        )
    envelope = {
        k: rule(k, doc[k], k) for k in ("as_of", "application_id", "idempotency_key") if k in doc
    }
    if "as_of" in envelope and envelope["as_of"].type != "date":
        raise ConfigError(f"{where}: as_of.type: must be date")
    root = None
    if "root" in doc:
        if source != "xml":
            raise ConfigError(f"{where}: root: only for source xml")
        root = _qname(doc["root"], namespaces, f"{where}: root")
    return Mapping(
        name=doc["name"],
        source=source,
        file=str(file),
        rules=tuple(rules),
        application_id=envelope.get("application_id"),
        idempotency_key=envelope.get("idempotency_key"),
        idempotency_prefix=(doc.get("idempotency_key") or {}).get("prefix", ""),
        as_of=envelope.get("as_of"),
        root=root,
        output=_compile_output(doc.get("output") or {}, where),
    )


def _compile_rule(
    target: str,
    spec: MappingABC[str, Any],
    key: str,
    source: str,
    namespaces: MappingABC[str, str],
    tables: MappingABC[str, MappingABC[str, Any]],
    where: str,
) -> Rule:
    here = f"{where}: {key}"
    if ("path" in spec) == ("const" in spec):
        raise ConfigError(f"{here}: give exactly one of path and const")
    if "const" in spec:
        extra = sorted(set(spec) - {"const"})
        if extra:
            raise ConfigError(f"{here}.{extra[0]}: not allowed with const")
        return Rule(target, const=spec["const"])
    try:
        path = (
            compile_xml_path(spec["path"], namespaces)
            if source == "xml"
            else compile_json_path(spec["path"])
        )
    except PathSyntaxError as exc:
        raise ConfigError(f"{here}.path: {exc}") from None
    kind = spec.get("type", "date" if "format" in spec else "string")
    changes: dict[str, Any] = {"type": kind}
    if "codes" in spec:
        clash = sorted(set(spec) & {"type", "format", "derive", "unit", "bands"})
        if clash:
            raise ConfigError(f"{here}.{clash[0]}: not allowed with codes (codes read the text)")
        if spec["codes"] not in tables:
            known = ", ".join(sorted(tables)) or "none"
            raise ConfigError(
                f"{here}.codes: unknown code table {spec['codes']!r} (known: {known})"
            )
        changes.update(codes=tables[spec["codes"]], code_table=spec["codes"])
    if kind == "date":
        try:
            changes["date_pattern"] = tf.check_date_format(spec.get("format", "iso-date"))
        except ValueError as exc:
            raise ConfigError(f"{here}.format: {exc}") from None
    elif "format" in spec:
        raise ConfigError(f"{here}.format: only for type date")
    numeric = kind in ("integer", "number") or "derive" in spec
    if "derive" in spec:
        if kind != "date":
            raise ConfigError(f"{here}.derive: needs type date")
        changes["derive"] = spec["derive"]
    if "unit" in spec:
        if not numeric:
            raise ConfigError(f"{here}.unit: needs a number (type integer or number, or derive)")
        try:
            changes["unit"], _ = tf.check_unit(spec["unit"])
        except ValueError as exc:
            raise ConfigError(f"{here}.unit: {exc}") from None
    if "bands" in spec:
        if not numeric:
            raise ConfigError(f"{here}.bands: needs a number (type integer or number, or derive)")
        bands = [
            (Decimal(str(b["below"])) if "below" in b else None, b["value"]) for b in spec["bands"]
        ]
        bounds = [b for b, _ in bands]
        if None in bounds[:-1] or any(
            a is not None and b is not None and a >= b for a, b in pairwise(bounds)
        ):
            raise ConfigError(f"{here}.bands: bounds must rise; only the last may omit below")
        changes["bands"] = tuple(bands)
    if "prefix" in spec and key != "idempotency_key":
        raise ConfigError(f"{here}.prefix: only for idempotency_key")
    return Rule(target, path=path, **changes)


def _compile_output(spec: MappingABC[str, Any], where: str) -> Output:
    fields = []
    for i, f in enumerate(spec.get("fields", ())):
        if "const" in f:
            fields.append(OutputField(f["name"], const=f["const"], codes=f.get("codes")))
            continue
        steps = tuple(
            s for part in f["value"].split(".") for s in part.replace("[*]", ".*").split(".")
        )
        if not steps or steps[0] not in DOCUMENT_MEMBERS or any(not s for s in steps):
            raise ConfigError(
                f"{where}: output.fields.{i}.value: {f['value']!r} is not a path into the "
                f"decision document (members: {', '.join(sorted(DOCUMENT_MEMBERS))})"
            )
        codes = {str(k): v for k, v in f["codes"].items()} if "codes" in f else None
        fields.append(OutputField(f["name"], steps=steps, codes=codes))
    namespace = spec.get("namespace")
    return Output(
        spec.get("format", "json"), spec.get("root", "Decision"), namespace, tuple(fields)
    )


def _qname(text: str, namespaces: MappingABC[str, str], where: str) -> str:
    prefix, _, local = text.rpartition(":")
    if prefix and prefix not in namespaces:
        raise ConfigError(f"{where}: undeclared namespace prefix {prefix!r}")
    try:
        return etree.QName(namespaces[prefix] if prefix else None, local).text
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
