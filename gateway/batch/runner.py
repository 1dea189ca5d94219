"""Run a batch file through a pipeline: chunks in, decisions logged exactly once, a file out.

Each chunk goes through :func:`gateway.batch.scoring.score_frame` (the function Spark
runs too, :mod:`gateway.batch.spark`): its new records are inserted in one transaction.
Row ``n`` of a file is logged under
the idempotency key ``batch:{sha256(file)[:16]}:{n}`` of the run's client, so a run that
was killed and is started again skips every row whose chunk had committed: a chunk's
transaction either committed (all its rows are skipped) or did not (all are decided
again). The output file is rebuilt in full on every run, from the log for rows decided
before, and replaces the previous one only when complete.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine

from gateway.batch.copybook import Copybook
from gateway.batch.mismo import iter_mismo_chunks
from gateway.batch.readers import Chunk, file_sha256, iter_chunks, map_chunk

# The output's names and helpers live beside score_frame (re-exported here).
from gateway.batch.scoring import LOOKUP_SLICE as LOOKUP_SLICE
from gateway.batch.scoring import OUTPUT_COLUMNS as OUTPUT_COLUMNS
from gateway.batch.scoring import OUTPUT_SCHEMA as _SCHEMA
from gateway.batch.scoring import gc_paused as gc_paused
from gateway.batch.scoring import key_prefix as key_prefix
from gateway.batch.scoring import output_row as output_row
from gateway.batch.scoring import score_frame
from gateway.decision_log import DecisionLog
from gateway.events import EventDispatcher
from gateway.mappings import Mapping
from gateway.pipeline import Pipeline

OUTPUT_FORMATS = ("csv", "parquet")


@dataclass(frozen=True)
class BatchSummary:
    """What a run did."""

    rows: int
    decided: int  # newly decided and logged by this run
    skipped: int  # already logged by an earlier run
    file_sha256: str
    output: Path


class OutputWriter:
    """Writes output rows to ``path + '.partial'``; :meth:`close` moves it into place."""

    def __init__(self, path: Path, fmt: str) -> None:
        if fmt not in OUTPUT_FORMATS:
            raise ValueError(f"unknown output format {fmt!r}")
        self.path, self.fmt = path, fmt
        self.partial = path.with_name(path.name + ".partial")
        self._parquet: pq.ParquetWriter | None = None
        self._handle = None
        if fmt == "csv":
            self._handle = open(self.partial, "w", newline="", encoding="utf-8")  # noqa: SIM115
            self._csv = csv.DictWriter(self._handle, fieldnames=OUTPUT_COLUMNS)
            self._csv.writeheader()
        else:
            self._parquet = pq.ParquetWriter(self.partial, _SCHEMA)

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        if self._parquet is not None:
            self._parquet.write_table(pa.Table.from_pylist(list(rows), schema=_SCHEMA))
        else:
            self._csv.writerows(rows)

    def close(self, complete: bool = True) -> None:
        """Finish the file; only a complete one replaces the output."""
        if self._parquet is not None:
            self._parquet.close()
        if self._handle is not None:
            self._handle.close()
        if complete:
            os.replace(self.partial, self.path)


def score_file(
    pipeline: Pipeline,
    engine: Engine,
    path: str | Path,
    *,
    fmt: str,
    client_id: str,
    output: str | Path,
    output_format: str = "csv",
    chunk_size: int = 5000,
    copybook: Copybook | None = None,
    encoding: str = "cp037",
    events: EventDispatcher | None = None,
    on_chunk: Callable[[int], None] | None = None,
    mapping: Mapping | None = None,
    decision_log: DecisionLog | None = None,
    on_rows: Callable[[Sequence[dict[str, Any]]], None] | None = None,
    protect: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
) -> BatchSummary:
    """Decide every row of the file at ``path``; resumable (see the module docstring).

    ``decision_log`` (default: a plain log on ``engine``) writes each chunk's records with
    their companion rows. ``on_chunk`` gets each chunk's row count once it is logged;
    ``on_rows`` its output rows (a job's progress counts outcomes from them); an exception
    either raises stops the run, leaving the output file incomplete. A ``mismo`` file is
    read through ``mapping`` (one application per ``DEAL``, :mod:`gateway.batch.mismo`).
    ``protect`` seals each chunk's personal values before they are logged; by default the
    log's own sealer (``decision_log.seal_many``, the gateway's personal-data service).
    """
    log = decision_log or DecisionLog(engine)
    protect = protect or log.seal_many  # personal values are never stored in clear
    sha = file_sha256(path)
    prefix = key_prefix(sha)
    writer = OutputWriter(Path(output), output_format)
    rows = decided = 0
    try:
        for chunk in _chunks(path, fmt, chunk_size, copybook, encoding, mapping):
            scored = score_frame(
                pipeline,
                log,
                chunk.frame,
                keys=[f"{prefix}{n}" for n in chunk.row_numbers],
                row_numbers=chunk.row_numbers,
                client_id=client_id,
                row_errors=chunk.row_errors,
                application_ids=chunk.application_ids,
                events=events,
                protect=protect,
            )
            out = scored.rows
            writer.write(out)
            rows += len(out)
            decided += scored.decided
            if on_chunk is not None:
                on_chunk(len(out))
            if on_rows is not None:
                on_rows(out)
    except BaseException:
        writer.close(complete=False)
        raise
    writer.close()
    return BatchSummary(rows, decided, rows - decided, sha, Path(output))


def _chunks(
    path: str | Path,
    fmt: str,
    chunk_size: int,
    copybook: Copybook | None,
    encoding: str,
    mapping: Mapping | None,
) -> Iterator[Chunk]:
    """The file's chunks as applications (mapped, when a mapping is given)."""
    if fmt == "mismo":
        if mapping is None:
            raise ValueError("a MISMO file needs a mapping (e.g. mismo-3.4)")
        yield from iter_mismo_chunks(path, mapping, chunk_size)
        return
    for chunk in iter_chunks(path, fmt, chunk_size, copybook=copybook, encoding=encoding):
        yield chunk if mapping is None else map_chunk(mapping, chunk)
