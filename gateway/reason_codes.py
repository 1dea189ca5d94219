"""Reason-code tables: per field, the code and adverse-action text given to an applicant.

A table is a YAML file (``config/reason_codes/*.yaml``)::

    table: german-credit
    version: "1"
    codes:
      credit_amount: {code: R05, text: "Amount of credit requested"}

Each model version carries the table it was registered with (metadata key
``reason_codes``, see :meth:`ReasonTable.for_model`), so a decision's codes follow
the model that scored it. A table may never name a protected attribute: such a
table is refused when it is attached to a model and again when the model is
registered (:func:`check_model_metadata`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import load_yaml_file, validate

REASON_TABLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["table", "version", "codes"],
    "properties": {
        "table": {"type": "string", "minLength": 1},
        "version": {"type": "string", "minLength": 1},
        "codes": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["code", "text"],
                "properties": {
                    "code": {"type": "string", "minLength": 1},
                    "text": {"type": "string", "minLength": 1},
                },
            },
        },
    },
}


class ProtectedReason(ValueError):
    """A reason-code table names a protected attribute."""

    def __init__(self, fields: Iterable[str]) -> None:
        names = ", ".join(sorted(fields))
        super().__init__(f"the reason-code table names protected attribute(s): {names}")


@dataclass(frozen=True)
class ReasonTable:
    """A validated reason-code table."""

    table: str
    version: str
    codes: Mapping[str, tuple[str, str]]  # field -> (code, text)

    @property
    def label(self) -> str:
        """``table@version``: what a decision records."""
        return f"{self.table}@{self.version}"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "reason-code table") -> ReasonTable:
        """Validate ``data`` (the YAML shape) into a table; ``ConfigError`` if malformed."""
        validate(data, REASON_TABLE_SCHEMA, where=where)
        codes = {field: (e["code"], e["text"]) for field, e in data["codes"].items()}
        return cls(table=str(data["table"]), version=str(data["version"]), codes=codes)

    def for_model(self, features: Iterable[str], protected: Iterable[str]) -> dict[str, Any]:
        """The table as model metadata; refuses a protected field (``ProtectedReason``)."""
        check_not_protected(self.codes, protected)
        used = set(features)
        return {
            "table": self.table,
            "version": self.version,
            "label": self.label,
            "codes": {
                field: {"code": code, "text": text}
                for field, (code, text) in self.codes.items()
                if field in used  # a code for a field the model never reads is never given
            },
        }


def load_reason_table(path: Path) -> ReasonTable:
    """Read and validate a reason-code table file."""
    return ReasonTable.from_mapping(
        load_yaml_file(Path(path), "reason_codes"), where=f"reason-code table {Path(path).name}"
    )


def check_not_protected(fields: Iterable[str], protected: Iterable[str]) -> None:
    """Raise :class:`ProtectedReason` if any of ``fields`` is protected."""
    named = set(fields) & set(protected)
    if named:
        raise ProtectedReason(named)


def check_model_metadata(metadata: Mapping[str, Any]) -> None:
    """At registration: a version's reason-code table is well formed and names no
    protected attribute (those listed in ``protected_excluded``)."""
    data = metadata.get("reason_codes")
    if data is None:
        return
    table = ReasonTable.from_mapping(
        {k: data[k] for k in ("table", "version", "codes") if k in data},
        where="metadata.reason_codes",
    )
    check_not_protected(table.codes, metadata.get("protected_excluded", ()))


def model_reason_table(metadata: Mapping[str, Any]) -> ReasonTable | None:
    """The reason-code table a model version carries, if any."""
    data = metadata.get("reason_codes")
    if not data:
        return None
    return ReasonTable.from_mapping(
        {k: data[k] for k in ("table", "version", "codes") if k in data},
        where="metadata.reason_codes",
    )
