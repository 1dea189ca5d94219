"""Synthetic decision rows for tamper-evidence tests, inserted the way the log does."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from gateway import ids
from gateway.decision_log import DecisionLog
from gateway.record import row_for


def synthetic_row(
    i: int, decision_id: str | None = None, at: datetime | None = None
) -> dict[str, Any]:
    """A ``decisions`` row as :class:`~gateway.decisions.DecisionService` would write it."""
    at = at or datetime.now(UTC)
    decision_id = decision_id or ids.new_id()
    probability = (i % 997) / 997
    document = {
        "decision_id": decision_id,
        "request_id": f"req-{i}",
        "pipeline": "credit-risk",
        "adapter": "rest",
        "client_id": "lgc_test",
        "application_id": f"LN-{i}",
        "idempotency_key": None,
        "received_at": (at - timedelta(milliseconds=3)).isoformat(),
        "decided_at": at.isoformat(),
        "status": "decided",
        "status_code": 201,
        "outcome": "approve" if probability < 0.3 else "refer",
        "probability_of_default": probability,
        "model": {"name": "german-credit", "version": 1, "sha256": "ab" * 32},
        "policy": {"version": "2026-11", "outcome": "approve"},
        "reason_codes": [],
        "application": {"amount": 1000 + i, "note": "caf\u00e9 \u2013 ok"},
        "features": {"amount": 1000 + i},
    }
    request_hash = hashlib.sha256(str(i).encode()).hexdigest()
    return row_for(document, request_hash, orjson.dumps(document).decode())


def append_rows(engine: sa.Engine, n: int, start: int = 0) -> list[str]:
    """Append ``n`` synthetic decisions; their ids."""
    log = DecisionLog(engine)
    out = []
    for i in range(start, start + n):
        row = synthetic_row(i)
        log.append(row)
        out.append(row["id"])
    return out


def tamper(engine: sa.Engine, sql: str, **params: Any) -> None:
    """Run ``sql`` as someone bypassing the application: on PostgreSQL, with the
    append-only triggers switched off for the session (as a superuser could)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        conn.execute(sa.text(sql), params)
