"""The SQL of monitoring runs: a window of ``decision_monitoring`` rows, aggregated in the database.

A window of the *last N* decisions is first resolved to its oldest row, a
``(received_at, decision_id)`` bound read from the index (an index-only scan), so every
query of the run is a plain filtered scan with no sort.

The bin counts of every slot come from one query. Hash aggregation costs per grouping
key and row, so slots are packed several to a key (a mixed-radix number of their bins,
offset by the negative codes, at most :data:`PACK_LIMIT` combinations per key: a small
hash table), counted per key, and unpacked in numpy. Shapes, measured on 1,000,000 rows
in ``docs/performance.md`` (``bench/drift_run.py``):

- ``grouping_sets``: one scan, ``GROUP BY GROUPING SETS ((k0), (k1), ...)`` (PostgreSQL);
- ``union_all``: one ``GROUP BY`` per packed key, ``UNION ALL``-ed (any SQL; SQLite);
- ``lateral``: one scan, rows unpivoted into (slot, bin) pairs by
  ``CROSS JOIN LATERAL (VALUES ...)`` and hashed once (PostgreSQL; unpacked, slowest).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy import Connection

#: The fastest shape on PostgreSQL here (bench/drift_run.py); others stay selectable.
POSTGRES_DEFAULT = "grouping_sets"
#: Most combinations of bins one packed key may take.
PACK_LIMIT = 5000
#: Codes below bin 0 (see :mod:`gateway.monitoring.layout`); a NULL counts as the lowest.
CODES = 3

_DT = sa.DateTime(timezone=True)


@dataclass(frozen=True)
class Window:
    """Which decisions a run looks at: the ``last`` N, and/or those received in [since, until)."""

    last: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "last": self.last,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }


@dataclass(frozen=True)
class Scope:
    """The decisions of one pipeline binned against one model version."""

    pipeline: str
    model_name: str
    model_version: int


@dataclass(frozen=True)
class Bounds:
    """A window resolved to filters: its scope, time range and oldest row (if ``last``)."""

    scope: Scope
    since: datetime | None
    until: datetime | None
    oldest: tuple[datetime, str] | None = None

    def where(self) -> tuple[str, dict[str, Any]]:
        conds = ["pipeline = :pipeline", "model_name = :model_name", "model_version = :version"]
        params: dict[str, Any] = {
            "pipeline": self.scope.pipeline,
            "model_name": self.scope.model_name,
            "version": self.scope.model_version,
        }
        if self.since is not None:
            conds.append("received_at >= :since")
            params["since"] = self.since
        if self.until is not None:
            conds.append("received_at < :until")
            params["until"] = self.until
        if self.oldest is not None:
            conds.append("(received_at, decision_id) >= (:oldest_at, :oldest_id)")
            params["oldest_at"], params["oldest_id"] = self.oldest
        return " AND ".join(conds), params


def _text(sql: str, params: dict[str, Any]) -> sa.TextClause:
    """``sql`` with its time parameters typed, so each dialect stores and compares them alike."""
    times = [sa.bindparam(k, type_=_DT) for k in ("since", "until", "oldest_at") if k in params]
    clause = sa.text(sql)
    return clause.bindparams(*times) if times else clause


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def resolve(conn: Connection, scope: Scope, window: Window) -> Bounds:
    """``window`` as filters: the last N resolved to the oldest row they hold."""
    bounds = Bounds(scope, _utc(window.since), _utc(window.until))
    if window.last is None:
        return bounds
    where, params = bounds.where()
    sql = (
        f"SELECT received_at, decision_id FROM decision_monitoring WHERE {where} "
        "ORDER BY received_at DESC, decision_id DESC LIMIT 1 OFFSET :skip"
    )
    stmt = _text(sql, params).columns(sa.column("received_at", _DT), sa.column("decision_id"))
    found = conn.execute(stmt, {**params, "skip": window.last - 1}).first()
    if found is None:  # fewer than N rows: all of them
        return bounds
    return Bounds(scope, bounds.since, bounds.until, (found.received_at, found.decision_id))


def window_size(conn: Connection, bounds: Bounds) -> int:
    """How many decisions the window holds."""
    where, params = bounds.where()
    sql = f"SELECT count(*) FROM decision_monitoring WHERE {where}"
    return int(conn.execute(_text(sql, params), params).scalar_one())


def pack(
    columns: Sequence[tuple[str, int]], limit: int = PACK_LIMIT
) -> list[list[tuple[str, int]]]:
    """Columns (name, bins) grouped into keys of at most ``limit`` combinations (first fit,
    widest first); each member's radix is its bins plus the codes."""
    keys: list[list[tuple[str, int]]] = []
    sizes: list[int] = []
    for name, bins in sorted(columns, key=lambda c: -c[1]):
        radix = bins + CODES
        for i, size in enumerate(sizes):
            if size * radix <= limit:
                keys[i].append((name, radix))
                sizes[i] *= radix
                break
        else:
            keys.append([(name, radix)])
            sizes.append(radix)
    return keys


def _key_sql(members: Sequence[tuple[str, int]]) -> str:
    expr = "0"
    for name, radix in members:
        # a NULL slot counts as the lowest code, so it never hides the key's other slots
        expr = f"({expr}) * {radix} + (COALESCE({name}, {-CODES}) + {CODES})"
    return expr


def _unpack(
    members: Sequence[tuple[str, int]], values: np.ndarray, counts: np.ndarray
) -> dict[str, dict[int, int]]:
    out: dict[str, dict[int, int]] = {}
    rest = values.astype(np.int64)
    for name, radix in reversed(members):
        rest, digit = np.divmod(rest, radix)
        bins = digit - CODES
        per_bin: dict[int, int] = {}
        for b in np.unique(bins):
            per_bin[int(b)] = int(counts[bins == b].sum())
        out[name] = per_bin
    return out


def bin_counts(
    conn: Connection,
    bounds: Bounds,
    columns: Sequence[tuple[str, int]],
    method: str = "auto",
) -> dict[str, dict[int, int]]:
    """Per column of ``columns`` (slot column or ``score_bin``, with its number of bins),
    the window's count per bin (codes included). Column names come from the fixed slot
    list, never from a caller."""
    if not columns:
        return {}
    dialect = conn.dialect.name
    if method == "auto":
        method = POSTGRES_DEFAULT if dialect == "postgresql" else "union_all"
    if method != "union_all" and dialect != "postgresql":
        method = "union_all"
    where, params = bounds.where()
    out: dict[str, dict[int, int]] = {}
    if method == "lateral":
        names = [c for c, _ in columns]
        pairs = ", ".join(f"({i}, COALESCE(w.{c}, {-CODES}))" for i, c in enumerate(names))
        sql = (
            f"SELECT s.slot, s.bin, count(*) FROM (SELECT {', '.join(names)} "
            f"FROM decision_monitoring WHERE {where}) AS w "
            f"CROSS JOIN LATERAL (VALUES {pairs}) AS s(slot, bin) GROUP BY s.slot, s.bin"
        )
        out = {c: {} for c in names}
        for slot, bin_, n in conn.execute(_text(sql, params), params):
            out[names[slot]][int(bin_)] = int(n)
        return out
    keys = pack(columns)
    exprs = [_key_sql(members) for members in keys]
    if method == "grouping_sets":
        k = len(exprs)
        selected = ", ".join(f"{e} AS k{i}" for i, e in enumerate(exprs))
        flags = ", ".join(f"GROUPING(k{i})" for i in range(k))
        sets = ", ".join(f"(k{i})" for i in range(k))
        keys_sql = ", ".join(f"k{i}" for i in range(k))
        sql = (
            f"SELECT {keys_sql}, {flags}, count(*) FROM (SELECT {selected} "
            f"FROM decision_monitoring WHERE {where}) AS w GROUP BY GROUPING SETS ({sets})"
        )
        rows = conn.execute(_text(sql, params), params).all()
        per_key: list[list[tuple[int, int]]] = [[] for _ in range(k)]
        for row in rows:
            i = next(j for j in range(k) if row[k + j] == 0)  # the key this row groups
            per_key[i].append((int(row[i]), int(row[2 * k])))
    elif method == "union_all":
        parts = [
            f"SELECT {i} AS k, {e} AS v, count(*) AS n FROM decision_monitoring "
            f"WHERE {where} GROUP BY {e}"
            for i, e in enumerate(exprs)
        ]
        per_key = [[] for _ in exprs]
        for i, v, n in conn.execute(_text(" UNION ALL ".join(parts), params), params):
            per_key[int(i)].append((int(v), int(n)))
    else:
        raise ValueError(f"unknown aggregation {method!r}")
    for members, found in zip(keys, per_key, strict=True):
        if found:
            arr = np.array(found, dtype=np.int64)
            out.update(_unpack(members, arr[:, 0], arr[:, 1]))
        else:
            out.update({name: {} for name, _ in members})
    return out


def outcome_pairs(conn: Connection, bounds: Bounds) -> list[tuple[float, int]]:
    """(probability, 1 if defaulted) of the window's decisions with a recorded loan outcome."""
    where, params = bounds.where()
    sql = (
        "SELECT m.probability, CASE WHEN o.status = 'defaulted' THEN 1 ELSE 0 END "
        f"FROM (SELECT decision_id, probability FROM decision_monitoring WHERE {where}) AS m "
        "JOIN loan_outcomes AS o ON o.decision_id = m.decision_id "
        "WHERE m.probability IS NOT NULL"
    )
    return [(float(p), int(b)) for p, b in conn.execute(_text(sql, params), params)]


def group_outcomes(
    conn: Connection, bounds: Bounds, columns: Sequence[str]
) -> dict[str, dict[int, dict[str, int]]]:
    """Per protected-group column, per group code, the count of each outcome."""
    if not columns:
        return {}
    where, params = bounds.where()
    parts = [
        f"SELECT {i} AS slot, {c} AS grp, outcome, count(*) AS n FROM decision_monitoring "
        f"WHERE {where} AND {c} IS NOT NULL GROUP BY {c}, outcome"
        for i, c in enumerate(columns)
    ]
    out: dict[str, dict[int, dict[str, int]]] = {c: {} for c in columns}
    for slot, grp, outcome, n in conn.execute(_text(" UNION ALL ".join(parts), params), params):
        out[columns[slot]].setdefault(int(grp), {})[str(outcome)] = int(n)
    return out
