"""Run a batch file through a pipeline: chunks in, decisions logged exactly once, a file out.

Each chunk is decided by :func:`gateway.batch.decide.decide_frame` and its records are
inserted in one transaction (one ``executemany``). Row ``n`` of a file is logged under
the idempotency key ``batch:{sha256(file)[:16]}:{n}`` of the run's client, so a run that
was killed and is started again skips every row whose chunk had committed: a chunk's
transaction either committed (all its rows are skipped) or did not (all are decided
again). The output file is rebuilt in full on every run, from the log for rows decided
before, and replaces the previous one only when complete.
"""

from __future__ import annotations

import csv
import gc
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from gateway.batch.copybook import Copybook
from gateway.batch.decide import decide_frame
from gateway.batch.mismo import iter_mismo_chunks
from gateway.batch.readers import Chunk, file_sha256, iter_chunks, map_chunk
from gateway.decision_log import DecisionLog, decisions
from gateway.events import EventDispatcher, Serialized
from gateway.mappings import Mapping
from gateway.pipeline import Pipeline

OUTPUT_FORMATS = ("csv", "parquet")
#: Keys per lookup query (well under SQLite's limit on bound parameters).
LOOKUP_SLICE = 1000
OUTPUT_COLUMNS = (
    "row_number",
    "decision_id",
    "status",
    "outcome",
    "probability_of_default",
    "reason_codes",
    "errors",
)
_SCHEMA = pa.schema(
    [
        ("row_number", pa.int64()),
        ("decision_id", pa.string()),
        ("status", pa.string()),
        ("outcome", pa.string()),
        ("probability_of_default", pa.float64()),
        ("reason_codes", pa.string()),
        ("errors", pa.string()),
    ]
)


@dataclass(frozen=True)
class BatchSummary:
    """What a run did."""

    rows: int
    decided: int  # newly decided and logged by this run
    skipped: int  # already logged by an earlier run
    file_sha256: str
    output: Path


def key_prefix(sha256: str) -> str:
    """The idempotency-key prefix of a file's rows."""
    return f"batch:{sha256[:16]}:"


def output_row(row_number: int, document: dict[str, Any]) -> dict[str, Any]:
    """One line of the output file."""
    return {
        "row_number": row_number,
        "decision_id": document["decision_id"],
        "status": document["status"],
        "outcome": document["outcome"],
        "probability_of_default": document["probability_of_default"],
        "reason_codes": " ".join(r["code"] for r in document["reason_codes"]),
        "errors": " ".join(f"{e['pointer']}:{e['code']}" for e in document["errors"]),
    }


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
            documents, new = _log_chunk(pipeline, log, chunk, prefix, client_id, events, protect)
            out = [output_row(n, d) for n, d in zip(chunk.row_numbers, documents, strict=True)]
            writer.write(out)
            rows += len(documents)
            decided += new
            if on_chunk is not None:
                on_chunk(len(documents))
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


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a chunk is decided.

    Deciding allocates many small acyclic objects (freed by reference counting); the
    collector's generation scans over them cost ~30 % of a chunk's time for nothing.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _logged(engine: Engine, client_id: str, keys: Sequence[str]) -> dict[str, bytes]:
    """The documents already logged under ``keys`` (looked up a bounded slice at a time)."""
    c = decisions.c
    found: dict[str, bytes] = {}
    with engine.connect() as conn:
        for start in range(0, len(keys), LOOKUP_SLICE):
            stmt = select(c.idempotency_key, c.document).where(
                c.client_id == client_id, c.idempotency_key.in_(keys[start : start + LOOKUP_SLICE])
            )
            found.update((row.idempotency_key, row.document.encode()) for row in conn.execute(stmt))
    return found


def _log_chunk(
    pipeline: Pipeline,
    log: DecisionLog,
    chunk: Chunk,
    prefix: str,
    client_id: str,
    events: EventDispatcher | None,
    protect: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Decide and log the chunk's rows not yet logged: (every row's document, rows new)."""
    keys = [f"{prefix}{n}" for n in chunk.row_numbers]
    for _attempt in range(3):
        logged = _logged(log.engine, client_id, keys)
        todo = [i for i, key in enumerate(keys) if key not in logged]
        results = []
        if todo:
            errs = {j: chunk.row_errors[i] for j, i in enumerate(todo) if i in chunk.row_errors}
            app_ids = chunk.application_ids
            with gc_paused():
                results = decide_frame(
                    pipeline,
                    chunk.frame.iloc[todo].reset_index(drop=True),
                    client_id=client_id,
                    keys=[keys[i] for i in todo],
                    row_errors=errs,
                    application_ids=None if app_ids is None else [app_ids[i] for i in todo],
                    protect=protect,  # personal values sealed (PersonalData.protect_many)
                )
            try:
                with log.engine.begin() as conn:  # the whole chunk commits, or none of it
                    log.insert(conn, [r.row for r in results], [r.document for r in results])
            except IntegrityError:
                continue  # another run logged some of these rows meanwhile: look again
        fresh = dict(zip((keys[i] for i in todo), results, strict=True))
        if events is not None:
            for result in results:
                events.emit("decision_logged", record=Serialized(result.payload))
        documents = [
            fresh[key].document if key in fresh else orjson.loads(logged[key]) for key in keys
        ]
        return documents, len(results)
    raise RuntimeError("the chunk's rows kept being logged concurrently; run it again")
