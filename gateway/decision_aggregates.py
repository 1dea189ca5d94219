"""Aggregates over the decision log, computed in the database.

``GET /v1/decisions/aggregates`` and ``loangate decisions aggregate``: per group (day,
model, outcome, reason code or pipeline) the number of records, how many the policy
approved, referred and declined, the approval rate and the mean probability of default,
under the same filters as listing (:mod:`gateway.decision_query`). One ``GROUP BY`` per
call, on SQLite and PostgreSQL alike; only the day bucket differs per dialect
(:func:`day_bucket`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from gateway.decision_log import LogUnavailable
from gateway.decision_query import DecisionQuery, conditions
from gateway.tables import Decision, DecisionReason

decisions: sa.Table = Decision.__table__  # type: ignore[assignment]
decision_reasons: sa.Table = DecisionReason.__table__  # type: ignore[assignment]

GROUPS = ("day", "model", "outcome", "reason", "pipeline")
#: Outcomes the policy decided (the approval rate's denominator); rejections and errors
#: are counted but never decided.
DECIDED = ("approve", "refer", "decline")


def day_bucket(column: Any, dialect: str) -> ColumnElement[str]:
    """The UTC calendar day (``YYYY-MM-DD``) of a timestamp column, in ``dialect``'s SQL."""
    if dialect == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")
    return sa.func.strftime("%Y-%m-%d", column)  # SQLite keeps UTC text


def _keys(group_by: str, dialect: str) -> list[ColumnElement[Any]]:
    c = decisions.c
    if group_by == "day":
        return [day_bucket(c.received_at, dialect).label("day")]
    if group_by == "model":
        return [c.model_name, c.model_version]
    if group_by == "reason":
        return [decision_reasons.c.code.label("reason_code")]
    return [c.outcome if group_by == "outcome" else c.pipeline]


def _measures() -> list[ColumnElement[Any]]:
    c = decisions.c

    def count_of(outcome: str) -> ColumnElement[Any]:
        return sa.func.sum(sa.case((c.outcome == outcome, 1), else_=0))

    return [
        sa.func.count().label("count"),
        count_of("approve").label("approved"),
        count_of("refer").label("referred"),
        count_of("decline").label("declined"),
        sa.func.avg(c.probability).label("mean_probability"),
    ]


def _figures(row: Any) -> dict[str, Any]:
    approved, referred, declined = (
        int(row.approved or 0),
        int(row.referred or 0),
        int(row.declined or 0),
    )
    decided = approved + referred + declined
    mean = row.mean_probability
    return {
        "count": int(row.count),
        "approved": approved,
        "referred": referred,
        "declined": declined,
        "approval_rate": round(approved / decided, 6) if decided else None,
        "mean_probability": None if mean is None else round(float(mean), 6),
    }


def aggregate(engine: Engine, q: DecisionQuery, group_by: str) -> dict[str, Any]:
    """Figures per group of the records matching ``q``, and over all of them.

    ``approval_rate`` = approved / (approved + referred + declined): the policy's
    outcome, before any human review. ``mean_probability`` averages the records that
    have one. Grouped by reason, a record counts once under each of its codes (records
    without a code are in no group) and the totals count it once.
    """
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {GROUPS}")
    where = conditions(q)
    keys = _keys(group_by, engine.dialect.name)
    grouped = sa.select(*keys, *_measures()).where(*where)
    if group_by == "reason":
        dr = decision_reasons.c
        grouped = grouped.select_from(
            decisions.join(decision_reasons, dr.decision_id == decisions.c.id)
        )
    grouped = grouped.group_by(*keys).order_by(*keys)
    totals = sa.select(*_measures()).where(*where)
    try:
        with engine.connect() as conn:
            rows = conn.execute(grouped).all()
            total = conn.execute(totals).one()
    except (DBAPIError, SQLAlchemyError, OSError) as exc:
        raise LogUnavailable(type(exc).__name__) from exc
    names = [key.name for key in keys]
    groups = [{**{name: row._mapping[name] for name in names}, **_figures(row)} for row in rows]
    return {"group_by": group_by, "groups": groups, "totals": _figures(total)}
