"""The batch decision function: a DataFrame of applications in, one document per row out.

:func:`decide_frame` is pure (no database, no files, no clock beyond the timestamps
each document carries) so that any engine can drive it: the CLI's chunks, an HTTP
upload job, or Spark's ``mapInPandas``. Each stage runs once over the whole chunk
through its component's ``*_many`` method (the first-party scorer scores the chunk as
one frame); a stage that raises on the chunk is re-run row by row with exactly the
single-request engine's error handling, so every row gets the document
:meth:`gateway.pipeline.Pipeline.run` would have given it, rejections included.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

import orjson
import pandas as pd

from gateway import ids
from gateway.batch.columns import evolve
from gateway.context import DecisionContext, StageRecord
from gateway.decisions import internal_error
from gateway.errors import FieldError, Problem, validation_failed
from gateway.pipeline import Pipeline, Stage, StageFailed
from gateway.record import build_document, row_for

ADAPTER = "batch"
_MANY = {
    "validator": "validate_many",
    "enricher": "enrich_many",
    "scorer": "score_many",
    "explainer": "explain_many",
    "policy": "decide_many",
}


#: (row position, its context after the stage or None if refused, problem, stage record)
_Ran = tuple[int, DecisionContext | None, Problem | None, StageRecord | None]


@dataclass(frozen=True)
class Decided:
    """One row's decision: its document (in clear), serialised once as stored (personal
    values sealed when ``decide_frame`` is given ``protect``), and its ``decisions`` row."""

    document: dict[str, Any]
    payload: bytes
    row: dict[str, Any]


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` as applications: Python values, missing cells left out.

    A missing cell (``None``, ``NaN``, ``NA``) is a field the row does not send, so the
    validators' missing-value policy applies to it as to a JSON request without it.
    pandas widens an integer column with missing cells to float: in a float column a
    whole number is taken as the integer it was (object columns are left as they are).
    """
    columns = [str(c) for c in frame.columns]
    values = []
    for name in frame.columns:
        column = frame[name]
        items = column.tolist()
        if pd.api.types.is_float_dtype(column.dtype):
            items = [int(v) if v == v and float(v).is_integer() else v for v in items]
        values.append(_cells(items))
    if not columns:
        return [{} for _ in range(len(frame))]
    return [
        {name: v for name, v in zip(columns, row, strict=True) if v is not _GONE}
        for row in zip(*values, strict=True)
    ]


_GONE = object()  # a missing cell, left out of the row's application


def _cells(items: list[Any]) -> list[Any]:
    """A column's cells as Python values, missing ones as ``_GONE`` (one pass, a column at
    a time; the common types take the first branch)."""
    out: list[Any] = []
    append = out.append
    for v in items:
        kind = type(v)
        if kind is str or kind is int or kind is bool:
            append(v)
        elif kind is float:
            append(_GONE if v != v else v)
        else:
            append(_GONE if _missing(v) else _native(v))
    return out


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _native(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars -> Python
    return item() if callable(item) and not isinstance(value, str) else value


def request_hash(pipeline: str, application: Mapping[str, Any]) -> str:
    """What identifies a row's request (the pipeline and the canonical JSON of its fields)."""
    body = orjson.dumps(dict(application), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(pipeline.encode() + b"\n" + body).hexdigest()


def decide_frame(
    pipeline: Pipeline,
    frame: pd.DataFrame,
    *,
    client_id: str,
    keys: Sequence[str | None] | None = None,
    request_id: str | None = None,
    row_errors: Mapping[int, Sequence[FieldError]] | None = None,
    application_ids: Sequence[str | None] | None = None,
    protect: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
) -> list[Decided]:
    """Decide every row of ``frame`` with ``pipeline``: one :class:`Decided` per row, in order.

    ``keys`` are the rows' idempotency keys and ``application_ids`` the callers' references;
    ``row_errors`` holds, per row position, what a reader or a mapping could not read (the
    row is rejected with those errors and goes through no stage). ``protect`` turns the
    chunk's documents into the ones stored (personal values sealed:
    :meth:`gateway.personal.PersonalData.protect_many`): each :class:`Decided` then holds
    the document in clear (for companion rows and the output file) and the sealed one as
    its ``payload`` and ``row``, as the single-request path does.
    """
    n = len(frame)
    keys = list(keys) if keys is not None else [None] * n
    if len(keys) != n:
        raise ValueError("one key per row")
    request_id = request_id or ids.new_id()
    received_at = datetime.now(UTC)
    records = frame_records(frame)
    ctxs: list[DecisionContext] = []
    app_ids = list(application_ids) if application_ids is not None else [None] * n
    for i, (application, key) in enumerate(zip(records, keys, strict=True)):
        errors = tuple((row_errors or {}).get(i, ()))
        ctxs.append(
            DecisionContext(
                decision_id=ids.new_id(),
                request_id=request_id,
                pipeline=pipeline.name,
                adapter=ADAPTER,
                client_id=client_id,
                received_at=received_at,
                application_id=app_ids[i],
                idempotency_key=key,
                request_hash=request_hash(pipeline.name, application),
                raw=application,
                errors=errors,
            )
        )
    initial = list(ctxs)
    problems: list[Problem | None] = [None] * n
    # Stage records are collected beside the contexts and set once per row at the end
    # (one copy of each context fewer per stage).
    stage_log: list[list[StageRecord]] = [[] for _ in range(n)]
    for stage in pipeline.stages:
        active = [i for i in range(n) if problems[i] is None and not ctxs[i].errors]
        if not active:
            break
        for i, ctx, problem, record in _run_stage(stage, [(i, ctxs[i]) for i in active]):
            if ctx is None:  # a stage refusing a row outright leaves it as received
                ctxs[i], stage_log[i] = initial[i], []
            else:
                ctxs[i] = ctx
                if record is not None:
                    stage_log[i].append(record)
            problems[i] = problem
    ctxs = [evolve(ctx, stages=tuple(rs)) for ctx, rs in zip(ctxs, stage_log, strict=True)]
    documents = []
    for ctx, problem in zip(ctxs, problems, strict=True):
        if problem is None and ctx.errors:
            problem = validation_failed(ctx.errors)
        documents.append(build_document(ctx, problem))
    sealed = protect(documents) if protect is not None else documents
    out = []
    for ctx, document, stored in zip(ctxs, documents, sealed, strict=True):
        payload = orjson.dumps(stored)
        out.append(Decided(document, payload, row_for(stored, ctx.request_hash, payload.decode())))
    return out


def _run_stage(stage: Stage, items: list[tuple[int, DecisionContext]]) -> list[_Ran]:
    """Run one stage over the chunk; rows fall back to the per-row engine if it raises."""
    many: Callable[[Sequence[DecisionContext]], list[DecisionContext]] = getattr(
        stage.component, _MANY[stage.kind]
    )
    started = perf_counter()
    try:
        done = many([ctx for _, ctx in items])
        if len(done) != len(items):
            raise ValueError(f"{stage.label}: {len(done)} results for {len(items)} rows")
    except Exception:
        return [_run_row(stage, i, ctx) for i, ctx in items]
    share = round((perf_counter() - started) * 1000.0 / len(items), 4)
    record = StageRecord(stage.label, stage.component.name, share)
    return [(i, ctx, None, record) for (i, _), ctx in zip(items, done, strict=True)]


def _run_row(stage: Stage, i: int, ctx: DecisionContext) -> _Ran:
    """One row through one stage with the single-request engine's handling of failures
    (``None`` for the context: a stage refused the row, which stays as received)."""
    one = Pipeline(
        name=ctx.pipeline,
        description="",
        adapters={},
        stages=(stage,),
        validators=(),
        scorer=None,  # type: ignore[arg-type]  # only ``run`` is used
        policy=None,  # type: ignore[arg-type]
    )
    try:
        ran = one.run(ctx)
    except StageFailed as exc:
        return i, exc.ctx, internal_error(), None
    except Problem as exc:
        return i, None, exc, None
    return i, ran, None, ran.stages[-1]
