"""Exports of the decision log as CSV or Parquet, streamed with bounded memory.

Rows come from a server-side cursor (``stream_results``) ``BATCH_ROWS`` at a time; each
batch becomes a slice of CSV text or one Parquet row group and is handed on before the
next is fetched, so memory stays flat whatever the number of records. The HTTP route
(``GET /v1/decisions/export``) and the CLI (``loangate decisions export``) share these
generators.

Columns: the record's facts (the ``decisions`` columns), its reason codes in rank order,
its human review, and :func:`application_values`: the single place that decides which
members of the application leave the gateway in an export (none by default: the
application holds personal data).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from gateway.db import aware
from gateway.decision_log import LogUnavailable
from gateway.decision_query import DecisionQuery, is_override, sorted_select
from gateway.reason_index import reason_codes
from gateway.tables import Decision, Review

decisions: sa.Table = Decision.__table__  # type: ignore[assignment]
reviews: sa.Table = Review.__table__  # type: ignore[assignment]

FORMATS = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
#: Rows per database fetch, per CSV slice and per Parquet row group: what memory holds
#: at once (see bench/export_memory.py).
BATCH_ROWS = 5_000

#: Members of the application exported beside the facts, as text columns named
#: ``application.<name>``. Empty: the application is the applicant's personal data.
APPLICATION_FIELDS: tuple[str, ...] = ()

_TIMESTAMP = pa.timestamp("us", tz="UTC")
#: (column, Parquet type) of every export, in order; CSV has the same header.
FACT_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("decision_id", pa.string()),
    ("received_at", _TIMESTAMP),
    ("decided_at", _TIMESTAMP),
    ("pipeline", pa.string()),
    ("adapter", pa.string()),
    ("client_id", pa.string()),
    ("application_id", pa.string()),
    ("status_code", pa.int32()),
    ("outcome", pa.string()),
    ("probability_of_default", pa.float64()),
    ("model_name", pa.string()),
    ("model_version", pa.int32()),
    ("model_sha256", pa.string()),
    ("policy_version", pa.string()),
    ("reason_codes", pa.list_(pa.string())),
    ("review_final_outcome", pa.string()),
    ("reviewer", pa.string()),
    ("reviewed_at", _TIMESTAMP),
    ("overridden", pa.bool_()),
)


def application_values(document: Mapping[str, Any]) -> list[str | None]:
    """The exported members of a decision's application (:data:`APPLICATION_FIELDS`), as
    text. The one place that decides what of the application goes out: masking or
    pseudonymisation of personal fields belongs here."""
    application = document.get("application") or {}
    out: list[str | None] = []
    for name in APPLICATION_FIELDS:
        value = application.get(name)
        out.append(None if value is None else str(value))
    return out


def columns() -> list[tuple[str, pa.DataType]]:
    """Every exported column with its Parquet type."""
    return [*FACT_COLUMNS, *((f"application.{n}", pa.string()) for n in APPLICATION_FIELDS)]


def _statement(q: DecisionQuery) -> sa.Select[Any]:
    d, r = decisions.c, reviews.c
    stmt = sorted_select(
        q,
        d.id,
        d.received_at,
        d.decided_at,
        d.pipeline,
        d.adapter,
        d.client_id,
        d.application_id,
        d.status_code,
        d.outcome,
        d.probability,
        d.model_name,
        d.model_version,
        d.model_sha256,
        d.policy_version,
        d.document,
        r.final_outcome,
        r.reviewer,
        r.created_at.label("reviewed_at"),
    )
    return stmt.select_from(decisions.outerjoin(reviews, r.decision_id == d.id))


def _row(row: Any) -> list[Any]:
    document = orjson.loads(row.document)
    return [
        row.id,
        aware(row.received_at),
        aware(row.decided_at),
        row.pipeline,
        row.adapter,
        row.client_id,
        row.application_id,
        row.status_code,
        row.outcome,
        row.probability,
        row.model_name,
        row.model_version,
        row.model_sha256,
        row.policy_version,
        reason_codes(document),
        row.final_outcome,
        row.reviewer,
        aware(row.reviewed_at),
        None if row.final_outcome is None else bool(is_override(row.final_outcome)),
        *application_values(document),
    ]


def batches(engine: Engine, q: DecisionQuery, size: int | None = None) -> Iterator[list[list[Any]]]:
    """The export's rows (in :func:`columns` order), ``size`` (default
    :data:`BATCH_ROWS`) at a time, from a server-side cursor. A database failure before
    the first batch is :class:`LogUnavailable`; later it ends the stream early (the
    caller has the rows so far, and a Parquet file without its footer does not open)."""
    size = size or BATCH_ROWS
    try:
        conn = engine.connect()
        result = conn.execution_options(stream_results=True, yield_per=size).execute(_statement(q))
    except (DBAPIError, SQLAlchemyError, OSError) as exc:
        raise LogUnavailable(type(exc).__name__) from exc
    try:
        for partition in result.partitions(size):
            rows = [_row(row) for row in partition]
            del partition  # hold one batch at a time, not the fetched rows beside it
            yield rows
            del rows
    finally:
        result.close()
        conn.close()


def csv_chunks(rows: Iterator[list[list[Any]]]) -> Iterator[bytes]:
    """UTF-8 CSV with a header: reason codes joined by ``;``, times in ISO 8601."""
    names = [name for name, _ in columns()]
    reasons_at = names.index("reason_codes")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    yield buffer.getvalue().encode()
    for batch in rows:
        buffer.seek(0)
        buffer.truncate()
        for values in batch:
            out = list(values)
            out[reasons_at] = ";".join(out[reasons_at])
            writer.writerow(
                "" if v is None else (v.isoformat() if isinstance(v, datetime) else v) for v in out
            )
        yield buffer.getvalue().encode()


class _Drain:
    """A write-only file for pyarrow whose bytes are taken away after each row group."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


def parquet_chunks(rows: Iterator[list[list[Any]]]) -> Iterator[bytes]:
    """A Parquet file (zstd), one row group per batch, streamed as it is written."""
    spec = columns()
    schema = pa.schema([pa.field(name, kind) for name, kind in spec])
    sink = _Drain()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd")
    try:
        for batch in rows:
            arrays = [
                pa.array([values[i] for values in batch], type=kind)
                for i, (_, kind) in enumerate(spec)
            ]
            del batch
            writer.write_batch(pa.record_batch(arrays, schema=schema))
            del arrays
            yield sink.take()
    finally:
        writer.close()
    yield sink.take()


def export_chunks(engine: Engine, q: DecisionQuery, fmt: str) -> Iterator[bytes]:
    """The export of the records matching ``q`` in ``fmt`` (``csv`` or ``parquet``).

    The first database round trip happens here, before any byte is produced, so an
    unavailable log is an error the caller can still answer with (a 503).
    """
    rows = batches(engine, q)
    first = next(rows, None)

    def chained() -> Iterator[list[list[Any]]]:
        nonlocal first
        if first is None:
            return
        batch, first = first, None  # not kept for the whole export
        yield batch
        del batch
        yield from rows

    return csv_chunks(chained()) if fmt == "csv" else parquet_chunks(chained())


def write_export(engine: Engine, q: DecisionQuery, fmt: str, out: Any) -> int:
    """Write the export to the binary file ``out``; the bytes written."""
    written = 0
    for chunk in export_chunks(engine, q, fmt):
        out.write(chunk)
        written += len(chunk)
    return written
