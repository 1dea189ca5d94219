"""The record hash: what a sealed decision row commits to.

A record hash covers every column of the ``decisions`` row, not only the JSON
document: the queryable columns (probability, outcome, ...) are evidence too.

    record_hash = sha256("loangate-record-v1\\n" + field(c) for c in COLUMNS
                         + 0x04 + sha256(document))

Each field is typed and self-delimiting, so no two rows share a preimage and PostgreSQL
can build the same bytes with its own functions (``verify`` then fetches 32 bytes per
row, not the document):

- NULL: ``0x00``
- text: ``0x01``, the UTF-8 length as a 4-byte big-endian integer, the UTF-8 bytes
- integer: ``0x02``, 8-byte big-endian two's complement (timestamps: microseconds since
  1970-01-01T00:00:00Z)
- float: ``0x03``, the IEEE 754 double, 8 bytes big-endian
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, literal_column

from gateway.tables import Decision

decisions: Table = Decision.__table__  # type: ignore[assignment]

PREFIX = b"loangate-record-v1\n"
#: The columns a record hash covers besides the document, in order, with their kind.
KINDS = {
    "id": "text",
    "received_at": "time",
    "decided_at": "time",
    "pipeline": "text",
    "adapter": "text",
    "client_id": "text",
    "application_id": "text",
    "idempotency_key": "text",
    "request_hash": "text",
    "status_code": "int",
    "outcome": "text",
    "probability": "float",
    "model_name": "text",
    "model_version": "int",
    "model_sha256": "text",
    "policy_version": "text",
}
COLUMNS = tuple(KINDS)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
_INT = struct.Struct(">q")
_FLOAT = struct.Struct(">d")
_LEN = struct.Struct(">I")


def canonical_time(value: datetime | str | int) -> int:
    """A stored timestamp as microseconds since the epoch (naive values, as SQLite
    returns them, are UTC); an ``int`` is taken as already canonical."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError("timestamp expected")
    return (value - (_EPOCH if value.tzinfo is not None else _NAIVE_EPOCH)) // _MICROSECOND


def canonical_values(row: Mapping[str, Any] | Sequence[Any]) -> list[Any]:
    """The :data:`COLUMNS` of ``row`` (mapping, or sequence in that order), timestamps as
    integer microseconds."""
    values = [row[c] for c in COLUMNS] if isinstance(row, Mapping) else list(row)
    for i in (1, 2):
        values[i] = canonical_time(values[i])
    return values


def _field(kind: str, value: Any) -> bytes:
    if value is None:
        return b"\x00"
    if kind == "text":
        if not isinstance(value, str):
            raise TypeError("text expected")
        raw = value.encode()
        return b"\x01" + _LEN.pack(len(raw)) + raw
    if kind == "float":
        if not isinstance(value, float):
            raise TypeError("float expected")
        return b"\x03" + _FLOAT.pack(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("integer expected")
    return b"\x02" + _INT.pack(value)


_KIND_LIST = tuple(KINDS.values())


def record_hash(values: Sequence[Any], document_digest: bytes) -> bytes:
    """The record hash over canonical column ``values`` and the document's sha256."""
    parts = [PREFIX]
    parts += [_field(k, v) for k, v in zip(_KIND_LIST, values, strict=True)]
    parts.append(b"\x04" + document_digest)
    return hashlib.sha256(b"".join(parts)).digest()


def document_digest(document: str | bytes) -> bytes:
    """sha256 of the stored document text (UTF-8)."""
    return hashlib.sha256(document.encode() if isinstance(document, str) else document).digest()


def hash_of_row(row: Mapping[str, Any]) -> bytes:
    """The record hash of a full ``decisions`` row (columns and ``document``)."""
    return record_hash(canonical_values(row), document_digest(row["document"]))


def _pg_field(name: str, kind: str) -> str:
    if kind == "text":
        raw = f"convert_to({name}, 'UTF8')"
        value = f"'\\x01'::bytea || int4send(octet_length({raw})) || {raw}"
    elif kind == "time":
        value = f"'\\x02'::bytea || int8send((extract(epoch FROM {name}) * 1000000)::int8)"
    elif kind == "int":
        value = f"'\\x02'::bytea || int8send({name}::int8)"
    else:
        value = f"'\\x03'::bytea || float8send({name})"
    return f"CASE WHEN {name} IS NULL THEN '\\x00'::bytea ELSE {value} END"


def _pg_record_hash() -> str:
    """The record hash as one PostgreSQL expression over ``decisions`` (same bytes)."""
    fields = " || ".join(_pg_field(f"decisions.{n}", k) for n, k in KINDS.items())
    prefix = "'\\x" + PREFIX.hex() + "'::bytea"
    doc = "sha256(convert_to(decisions.document, 'UTF8'))"
    return f"sha256({prefix} || {fields} || '\\x04'::bytea || {doc})"


_PG_RECORD_HASH = _pg_record_hash()


def selected_columns(dialect: str) -> list[ColumnElement[Any]]:
    """What to select to hash rows: the id first, then what :func:`hash_selected` needs.

    PostgreSQL computes the whole record hash in place (``id, hash``); elsewhere the
    columns and the document are fetched and hashed in Python.
    """
    if dialect == "postgresql":
        return [decisions.c.id, literal_column(_PG_RECORD_HASH).label("record_hash_")]
    return [*(decisions.c[name] for name in COLUMNS), decisions.c.document.label("doc")]


def hash_selected(row: Sequence[Any]) -> bytes:
    """The record hash of a row selected with :func:`selected_columns` (any dialect)."""
    if len(row) == 2:
        return bytes(row[1])
    return record_hash(canonical_values(row[: len(COLUMNS)]), document_digest(row[len(COLUMNS)]))
