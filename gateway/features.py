"""The feature table: versioned, point-in-time features of entities (customers, accounts).

An export of the ERP or CRM (CSV, or Parquet with ``pyarrow`` installed) is loaded as a
new *version* of a named feature set: one row per entity key and valid-from time, each
row's features checked against the set's schema. A lookup answers, for an entity and a
time, the row in force then (the latest ``valid_from`` at or before it) in the latest
or a chosen version, with one indexed query.

A schema file (YAML or JSON)::

    key: customer_id               # column holding the entity key
    valid_from: valid_from         # column holding the ISO 8601 date or date-time
    features:
      tenure_months: {type: integer, required: true, minimum: 0}
      segment: {type: string, enum: [retail, premium]}
      avg_balance: {type: number}

Types are ``integer``, ``number``, ``string`` and ``boolean``; an empty cell is ``null``
unless the feature is ``required``. Times without a zone are read as UTC.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast

import jsonschema
import orjson
import sqlalchemy as sa
import yaml

from gateway.errors import ConfigError
from gateway.tables import FeatureSet, FeatureValue

TYPES = ("integer", "number", "string", "boolean")
MAX_REPORTED_ERRORS = 20
MAX_KEY_LENGTH = 200
DEFAULT_CHUNK_ROWS = 5000
SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

SCHEMA_DOC: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["features"],
    "properties": {
        "key": {"type": "string", "minLength": 1},
        "valid_from": {"type": "string", "minLength": 1},
        "features": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["type"],
                "properties": {
                    "type": {"enum": list(TYPES)},
                    "required": {"type": "boolean"},
                    "enum": {"type": "array", "minItems": 1},
                    "minimum": {"type": "number"},
                    "maximum": {"type": "number"},
                },
            },
        },
    },
}

_fs = cast(sa.Table, FeatureSet.__table__)
_fv = cast(sa.Table, FeatureValue.__table__)


@dataclass(frozen=True)
class FeatureSchema:
    """The columns of a feature set: entity key, valid-from, and typed features."""

    key: str
    valid_from: str
    features: Mapping[str, Mapping[str, Any]]

    @classmethod
    def from_dict(cls, doc: Any, *, source: str = "schema") -> FeatureSchema:
        """Check ``doc`` (see the module docstring); a :class:`ConfigError` names the key."""
        try:
            jsonschema.validate(doc, SCHEMA_DOC)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(top)"
            raise ConfigError(f"{source}: {where}: {exc.message}") from None
        return cls(
            key=doc.get("key", "entity_key"),
            valid_from=doc.get("valid_from", "valid_from"),
            features={name: dict(spec) for name, spec in doc["features"].items()},
        )

    @classmethod
    def from_file(cls, path: Path) -> FeatureSchema:
        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        return cls.from_dict(doc, source=str(path))

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "valid_from": self.valid_from, "features": dict(self.features)}


@dataclass(frozen=True)
class RowError:
    """A refused value: its data row (1 = first row after the header) and column."""

    row: int
    column: str
    detail: str

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row else "header"
        return f"{where}, column {self.column!r}: {self.detail}"


class BadRows(Exception):
    """A load refused because of bad rows; nothing of it was stored."""

    def __init__(self, errors: list[RowError]) -> None:
        more = " (first errors only)" if len(errors) >= MAX_REPORTED_ERRORS else ""
        super().__init__(f"{len(errors)} bad value(s){more}: " + "; ".join(map(str, errors)))
        self.errors = errors


@dataclass(frozen=True)
class LoadResult:
    """A stored version of a feature set."""

    name: str
    version: int
    rows: int
    source_sha256: str


@dataclass(frozen=True)
class Lookup:
    """A point-in-time answer: the version asked, and the row in force (``None``: none)."""

    version: int
    valid_from: datetime | None
    values: Mapping[str, Any] | None


def parse_time(value: Any) -> datetime:
    """An aware UTC datetime from an ISO 8601 string, a date or a datetime (naive = UTC)."""
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, date):
        stamp = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and value.strip():
        stamp = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    else:
        raise ValueError("not an ISO 8601 date or date-time")
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def convert(spec: Mapping[str, Any], value: Any) -> Any:
    """``value`` (a CSV string or a Parquet value) as the feature's type; ValueError if not."""
    if _empty(value):
        if spec.get("required"):
            raise ValueError("is required")
        return None
    kind = spec["type"]
    text = value.strip() if isinstance(value, str) else None
    out: Any
    if kind == "integer":
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError("not an integer")
        try:
            out = int(text) if text is not None else int(value)
        except (TypeError, ValueError):
            raise ValueError("not an integer") from None
    elif kind == "number":
        if isinstance(value, bool):
            raise ValueError("not a number")
        try:
            out = float(text) if text is not None else float(value)
        except (TypeError, ValueError):
            raise ValueError("not a number") from None
        if not math.isfinite(out):
            raise ValueError("not a finite number")
    elif kind == "boolean":
        lowered = text.lower() if text is not None else value
        if lowered in ("true", "1", "yes", True):
            out = True
        elif lowered in ("false", "0", "no", False):
            out = False
        else:
            raise ValueError("not a boolean (true/false)")
    else:
        out = text if text is not None else str(value)
    if "enum" in spec and out not in spec["enum"]:
        raise ValueError(f"not one of {spec['enum']}")
    if "minimum" in spec and out < spec["minimum"]:
        raise ValueError(f"below the minimum {spec['minimum']}")
    if "maximum" in spec and out > spec["maximum"]:
        raise ValueError(f"above the maximum {spec['maximum']}")
    return out


def infer_schema(rows: Sequence[Mapping[str, Any]], key: str, valid_from: str) -> FeatureSchema:
    """A schema from sample rows: integer, number or string per column, nothing required."""
    columns = [c for c in (rows[0] if rows else {}) if c not in (key, valid_from)]
    features: dict[str, dict[str, Any]] = {}
    for column in columns:
        sample = [r[column] for r in rows if not _empty(r.get(column))]
        for kind in ("integer", "number", "string"):
            try:
                for value in sample:
                    convert({"type": kind}, value)
            except ValueError:
                continue
            features[column] = {"type": kind}
            break
    if not features:
        raise ConfigError("the file has no feature columns besides the key and valid-from")
    return FeatureSchema(key, valid_from, features)


def read_chunks(path: Path, chunk_rows: int) -> Iterator[list[dict[str, Any]]]:
    """The data rows of a CSV or Parquet file, ``chunk_rows`` at a time."""
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:  # pragma: no cover - depends on the installed extras
            raise ConfigError("reading Parquet needs the pyarrow package") from None
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield batch.to_pylist()
        return
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        chunk: list[dict[str, Any]] = []
        for row in reader:
            chunk.append(row)
            if len(chunk) >= chunk_rows:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def count_rows(path: Path) -> int:
    """The number of data rows (for progress): Parquet metadata, or CSV lines less the header."""
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as fh:
        lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))
    return max(lines - 1, 0)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class FeatureStore:
    """Loads feature-set versions into the database and looks entities up point-in-time."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def load(
        self,
        name: str,
        chunks: Iterable[Sequence[Mapping[str, Any]]],
        schema: FeatureSchema | None,
        *,
        key: str | None = None,
        valid_from: str | None = None,
        source_name: str = "-",
        source_sha256: str = "",
        loaded_by: str = "cli",
        progress: Callable[[int], None] | None = None,
    ) -> LoadResult:
        """Store ``chunks`` of rows as the next version of ``name``, all or nothing.

        ``key``/``valid_from`` override the schema's column names; without a schema one
        is inferred from the first chunk (and stored with the version). Raises
        :class:`BadRows` naming each bad value's row and column.
        """
        if not SET_NAME.fullmatch(name):
            raise ConfigError(f"feature set name {name!r}: 1 to 100 of A-Z a-z 0-9 _ . - expected")
        iterator = iter(chunks)
        first = next(iterator, [])
        if schema is None:
            schema = infer_schema(first, key or "entity_key", valid_from or "valid_from")
        schema = FeatureSchema(key or schema.key, valid_from or schema.valid_from, schema.features)
        header = set(first[0]) if first else set()
        absent = [c for c in (schema.key, schema.valid_from, *schema.features) if c not in header]
        if first and absent:
            raise BadRows([RowError(0, c, "no such column in the file") for c in absent])
        errors: list[RowError] = []
        seen: dict[tuple[str, datetime], int] = {}
        rows = 0
        with self.engine.begin() as conn:
            version = (
                conn.execute(
                    sa.select(sa.func.coalesce(sa.func.max(_fs.c.version), 0)).where(
                        _fs.c.name == name
                    )
                ).scalar_one()
                + 1
            )
            set_id = conn.execute(
                sa.insert(_fs)
                .values(
                    name=name,
                    version=version,
                    schema_json=orjson.dumps(schema.as_dict()).decode(),
                    source_name=source_name,
                    source_sha256=source_sha256,
                    row_count=0,
                    loaded_at=datetime.now(UTC),
                    loaded_by=loaded_by,
                )
                .returning(_fs.c.id)
            ).scalar_one()
            for chunk in _chain(first, iterator):
                batch = []
                for row in chunk:
                    rows += 1
                    record = self._check_row(schema, row, rows, set_id, seen, errors)
                    if record is not None and not errors:
                        batch.append(record)
                    if len(errors) >= MAX_REPORTED_ERRORS:
                        raise BadRows(errors)
                if batch:
                    conn.execute(sa.insert(_fv), batch)
                if progress is not None:
                    progress(len(chunk))
            if errors:
                raise BadRows(errors)
            if rows == 0:
                raise BadRows([RowError(0, schema.key, "the file has no data rows")])
            conn.execute(sa.update(_fs).where(_fs.c.id == set_id).values(row_count=rows))
        return LoadResult(name, version, rows, source_sha256)

    @staticmethod
    def _check_row(
        schema: FeatureSchema,
        row: Mapping[str, Any],
        number: int,
        set_id: int,
        seen: dict[tuple[str, datetime], int],
        errors: list[RowError],
    ) -> dict[str, Any] | None:
        before = len(errors)
        entity = row.get(schema.key)
        if _empty(entity):
            errors.append(RowError(number, schema.key, "the entity key is required"))
        elif len(str(entity).strip()) > MAX_KEY_LENGTH or "\x00" in str(entity):
            detail = f"longer than {MAX_KEY_LENGTH} characters or holds a NUL character"
            errors.append(RowError(number, schema.key, detail))
        stamp: datetime | None = None
        try:
            stamp = parse_time(row.get(schema.valid_from))
        except ValueError as exc:
            errors.append(RowError(number, schema.valid_from, str(exc)))
        values: dict[str, Any] = {}
        for column, spec in schema.features.items():
            try:
                values[column] = convert(spec, row.get(column))
            except ValueError as exc:
                errors.append(RowError(number, column, str(exc)))
        if len(errors) > before or stamp is None:
            return None
        entity_key = str(entity).strip()
        first = seen.setdefault((entity_key, stamp), number)
        if first != number:
            errors.append(
                RowError(number, schema.valid_from, f"same key and valid-from as row {first}")
            )
            return None
        return {
            "set_id": set_id,
            "entity_key": entity_key,
            "valid_from": stamp,
            "values_json": orjson.dumps(values).decode(),
        }

    def versions(self, name: str | None = None) -> list[dict[str, Any]]:
        """Loaded versions (newest first), of one set or of all."""
        query = sa.select(_fs).order_by(_fs.c.name, _fs.c.version.desc())
        if name is not None:
            query = query.where(_fs.c.name == name)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def lookup(
        self, name: str, entity_key: str, as_of: datetime, version: int | None = None
    ) -> Lookup | None:
        """The row of ``entity_key`` in force at ``as_of`` in ``version`` (default: latest).

        ``None`` when no such version is loaded; a :class:`Lookup` with ``values`` None
        when the entity has no row at or before ``as_of``. One query, on the primary key.
        """
        if len(entity_key) > MAX_KEY_LENGTH or "\x00" in entity_key:
            entity_key = ""  # cannot have been loaded (and PostgreSQL refuses NUL): no row
        inner = _fv.alias("inner")
        in_force = (
            sa.select(sa.func.max(inner.c.valid_from))
            .where(
                inner.c.set_id == _fs.c.id,
                inner.c.entity_key == entity_key,
                inner.c.valid_from <= as_of.astimezone(UTC),
            )
            .scalar_subquery()
        )
        joined = _fs.outerjoin(
            _fv,
            sa.and_(
                _fv.c.set_id == _fs.c.id,
                _fv.c.entity_key == entity_key,
                _fv.c.valid_from == in_force,
            ),
        )
        query = (
            sa.select(_fs.c.version, _fv.c.valid_from, _fv.c.values_json)
            .select_from(joined)
            .where(_fs.c.name == name)
            .order_by(_fs.c.version.desc())
            .limit(1)
        )
        if version is not None:
            query = query.where(_fs.c.version == version)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        if row.values_json is None:
            return Lookup(row.version, None, None)
        stamp = row.valid_from
        stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
        return Lookup(row.version, stamp, orjson.loads(row.values_json))


def _chain(
    first: Sequence[Mapping[str, Any]], rest: Iterator[Sequence[Mapping[str, Any]]]
) -> Iterator[Sequence[Mapping[str, Any]]]:
    yield first
    yield from rest
