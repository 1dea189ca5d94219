"""Stored monitoring runs (``monitoring_runs``): each run's window, results and alert count."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import Engine

from gateway.tables import MonitoringRun

runs: sa.Table = MonitoringRun.__table__  # type: ignore[assignment]

KINDS = ("drift", "performance", "fairness")


def store(engine: Engine, run: Mapping[str, Any]) -> None:
    """Insert one finished run (see :meth:`gateway.monitoring.monitor.Monitor.run_one`)."""
    with engine.begin() as conn:
        conn.execute(
            sa.insert(runs),
            {
                "id": run["id"],
                "kind": run["kind"],
                "pipeline": run["pipeline"],
                "model_name": run["model"],
                "model_version": run["version"],
                "window": orjson.dumps(run["window"]).decode(),
                "started_at": datetime.fromisoformat(run["started_at"]),
                "finished_at": datetime.fromisoformat(run["finished_at"]),
                "results": orjson.dumps(run["results"]).decode(),
                "alerts": run["alerts"],
            },
        )


def _as_run(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "pipeline": row.pipeline,
        "model": row.model_name,
        "version": row.model_version,
        "window": orjson.loads(row.window),
        "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at),
        "alerts": row.alerts,
        "results": orjson.loads(row.results),
    }


def _iso(value: datetime) -> str:
    return value.isoformat() if value.tzinfo else value.isoformat() + "+00:00"


def get(engine: Engine, run_id: str) -> dict[str, Any] | None:
    """The run ``run_id``, or ``None``."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
    return None if row is None else _as_run(row)


def latest(engine: Engine, kind: str, pipeline: str | None = None) -> list[dict[str, Any]]:
    """The newest run of ``kind`` per (pipeline, model, version), newest first."""
    c = runs.c
    newest = (
        sa.select(c.pipeline, c.model_name, c.model_version, sa.func.max(c.started_at).label("at"))
        .where(c.kind == kind)
        .group_by(c.pipeline, c.model_name, c.model_version)
    )
    if pipeline is not None:
        newest = newest.where(c.pipeline == pipeline)
    sub = newest.subquery()
    stmt = (
        sa.select(runs)
        .join(
            sub,
            sa.and_(
                c.pipeline == sub.c.pipeline,
                c.model_name == sub.c.model_name,
                c.model_version == sub.c.model_version,
                c.started_at == sub.c.at,
            ),
        )
        .where(c.kind == kind)
        .order_by(c.started_at.desc(), c.id.desc())
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    seen: set[tuple[str, str, int]] = set()
    out = []
    for row in rows:  # two runs started in the same instant: keep one
        key = (row.pipeline, row.model_name, row.model_version)
        if key not in seen:
            seen.add(key)
            out.append(_as_run(row))
    return out


def history(
    engine: Engine, kind: str, pipeline: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The last ``limit`` runs of ``kind``, oldest first (for plots over time)."""
    c = runs.c
    stmt = sa.select(runs).where(c.kind == kind)
    if pipeline is not None:
        stmt = stmt.where(c.pipeline == pipeline)
    stmt = stmt.order_by(c.started_at.desc(), c.id.desc()).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [_as_run(r) for r in reversed(rows)]
