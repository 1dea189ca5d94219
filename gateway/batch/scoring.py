"""Score a frame of applications: decide the rows not yet logged, log them once, answer all.

:func:`score_frame` is the one function every batch engine calls: ``loangate batch score``
runs it over each chunk of a file (:func:`gateway.batch.runner.score_file`), Spark runs it
over each Arrow batch of its partitions (:mod:`gateway.batch.spark`). Given the rows'
idempotency keys, it looks the keys up, decides only the rows not logged yet
(:func:`gateway.batch.decide.decide_frame`), inserts their records with their companion
rows through :meth:`gateway.decision_log.DecisionLog.insert` in one transaction, and
answers every row with its decision: the new one, or the one logged before. A retried
chunk (a restarted run, a retried or speculative Spark task) therefore adds nothing
twice; the unique ``(client_id, idempotency_key)`` of the log settles two writers racing
on the same rows.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from gateway.batch.decide import decide_frame
from gateway.decision_log import DecisionLog, decisions
from gateway.errors import FieldError
from gateway.events import EventDispatcher, Serialized
from gateway.pipeline import Pipeline

#: Keys per lookup query (well under SQLite's limit on bound parameters).
LOOKUP_SLICE = 1000
#: Times a chunk is looked up again after another writer logged some of its rows meanwhile.
RACE_ATTEMPTS = 3
OUTPUT_COLUMNS = (
    "row_number",
    "decision_id",
    "status",
    "outcome",
    "probability_of_default",
    "reason_codes",
    "errors",
)
#: The output rows' Arrow schema (the CLI's Parquet output and Spark's).
OUTPUT_SCHEMA = pa.schema(
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

Protect = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


@dataclass(frozen=True)
class Scored:
    """What :func:`score_frame` answers: each row's output line, in order, and how many
    rows it logged (the others were logged before)."""

    rows: list[dict[str, Any]]
    decided: int

    def frame(self) -> pd.DataFrame:
        """The output lines as a DataFrame of :data:`OUTPUT_COLUMNS`."""
        table = pa.Table.from_pylist(self.rows, schema=OUTPUT_SCHEMA)
        return table.to_pandas()


def key_prefix(sha256: str) -> str:
    """The idempotency-key prefix of a file's rows (row ``n`` is ``prefix + str(n)``)."""
    return f"batch:{sha256[:16]}:"


def output_row(row_number: int, document: Mapping[str, Any]) -> dict[str, Any]:
    """One line of the output: a row's number and its decision."""
    return {
        "row_number": row_number,
        "decision_id": document["decision_id"],
        "status": document["status"],
        "outcome": document["outcome"],
        "probability_of_default": document["probability_of_default"],
        "reason_codes": " ".join(r["code"] for r in document["reason_codes"]),
        "errors": " ".join(f"{e['pointer']}:{e['code']}" for e in document["errors"]),
    }


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


def logged_documents(engine: Engine, client_id: str, keys: Sequence[str]) -> dict[str, bytes]:
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


def score_frame(
    pipeline: Pipeline,
    log: DecisionLog,
    frame: pd.DataFrame,
    *,
    keys: Sequence[str],
    row_numbers: Sequence[int],
    client_id: str,
    row_errors: Mapping[int, Sequence[FieldError]] | None = None,
    application_ids: Sequence[str | None] | None = None,
    events: EventDispatcher | None = None,
    protect: Protect | None = None,
) -> Scored:
    """Decide and log the rows of ``frame`` not logged yet; every row's output line.

    ``keys`` are the rows' idempotency keys (logged under ``client_id``) and
    ``row_numbers`` what the output calls them; ``row_errors`` and ``application_ids``
    are as :func:`~gateway.batch.decide.decide_frame` takes them, by row position.
    The new rows commit in one transaction, or none of them does. ``protect`` seals
    personal values before they are stored (default: the log's own sealer, so personal
    values are never stored in clear); ``events`` gets a ``decision_logged`` per new record.
    """
    keys = list(keys)
    if not len(keys) == len(row_numbers) == len(frame):
        raise ValueError("one key and one row number per row")
    protect = protect or log.seal_many
    row_errors = row_errors or {}
    for _attempt in range(RACE_ATTEMPTS):
        logged = logged_documents(log.engine, client_id, keys)
        todo = [i for i, key in enumerate(keys) if key not in logged]
        results = []
        if todo:
            errors = {j: row_errors[i] for j, i in enumerate(todo) if i in row_errors}
            with gc_paused():
                results = decide_frame(
                    pipeline,
                    frame.iloc[todo].reset_index(drop=True),
                    client_id=client_id,
                    keys=[keys[i] for i in todo],
                    row_errors=errors,
                    application_ids=(
                        None if application_ids is None else [application_ids[i] for i in todo]
                    ),
                    protect=protect,
                )
            try:
                with log.engine.begin() as conn:  # the whole frame commits, or none of it
                    log.insert(conn, [r.row for r in results], [r.document for r in results])
            except IntegrityError:
                continue  # another writer logged some of these rows meanwhile: look again
        if events is not None:
            for result in results:
                events.emit("decision_logged", record=Serialized(result.payload))
        fresh = {keys[i]: r.document for i, r in zip(todo, results, strict=True)}
        rows = [
            output_row(n, fresh[key] if key in fresh else orjson.loads(logged[key]))
            for n, key in zip(row_numbers, keys, strict=True)
        ]
        return Scored(rows, len(results))
    raise RuntimeError("the chunk's rows kept being logged concurrently; run it again")
