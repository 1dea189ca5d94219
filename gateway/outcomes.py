"""Loan outcomes: how granted loans turned out, linked to the decisions that granted them.

One outcome per decision (``loan_outcomes`` is keyed on the decision id): recording the
same outcome again changes nothing (idempotent), a different one is a conflict. Only a
loan the gateway's records say was granted can have an outcome: an approved decision,
or a referral a reviewer approved. The date is the day the loan was repaid or went
into default: not before the decision, not in the future.

A batch is all or nothing: every row is checked, in one transaction, and a single
bad row records none of them; the answer names every bad row.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from gateway import ids
from gateway.decision_log import LogUnavailable
from gateway.errors import FieldError, Problem, bad_request
from gateway.reviews import DB_ERRORS, conflict
from gateway.tables import Decision, LoanOutcome, Review

STATUSES = ("repaid", "defaulted")
FIELDS = ("decision_id", "status", "date")
#: Most rows one batch may hold (the request body is capped by ``server.max_body_bytes`` too).
MAX_BATCH_ROWS = 5000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CHUNK = 500  # ids per IN (...) lookup

decisions: sa.Table = Decision.__table__  # type: ignore[assignment]
reviews: sa.Table = Review.__table__  # type: ignore[assignment]
outcomes: sa.Table = LoanOutcome.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class OutcomeRow:
    """A well-formed outcome to record (its decision not yet checked)."""

    decision_id: str
    status: str
    date: date


@dataclass(frozen=True)
class OutcomeRecord:
    """A stored loan outcome."""

    decision_id: str
    status: str
    date: date
    recorded_by: str
    recorded_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "status": self.status,
            "date": self.date.isoformat(),
            "recorded_by": self.recorded_by,
            "recorded_at": self.recorded_at.isoformat(),
        }


@dataclass(frozen=True)
class RowError:
    """Why one row of a batch (0-based ``index``) cannot be recorded."""

    index: int
    field: str
    code: str
    detail: str
    line: int | None = None  # CSV: the line the row ended on

    def field_error(self) -> FieldError:
        where = f"row {self.index + 1}" + (f" (line {self.line})" if self.line else "")
        return FieldError(f"/{self.index}/{self.field}", self.code, f"{where}: {self.detail}")


@dataclass(frozen=True)
class Recorded:
    """What a batch did: outcomes created and outcomes already on record unchanged."""

    created: int
    unchanged: int


def parse_row(item: Any, index: int, line: int | None = None) -> OutcomeRow | list[RowError]:
    """An :class:`OutcomeRow` from one JSON object or CSV row, or the errors in it."""
    if not isinstance(item, dict):
        return [RowError(index, "", "type", "must be an object", line)]
    errors = [
        RowError(index, str(key)[:50], "unknown", "unknown field", line)
        for key in item
        if key not in FIELDS
    ]
    for name in FIELDS:
        if item.get(name) in (None, ""):
            errors.append(RowError(index, name, "required", "is required", line))
        elif not isinstance(item[name], str):
            errors.append(RowError(index, name, "type", "must be a string", line))
    if errors:
        return errors
    decision_id, status, text = item["decision_id"], item["status"], item["date"]
    if not ids.is_valid(decision_id):
        errors.append(RowError(index, "decision_id", "format", "not a decision id", line))
    if status not in STATUSES:
        errors.append(RowError(index, "status", "enum", f"must be one of {list(STATUSES)}", line))
    day = None
    if _DATE.match(text):
        with contextlib.suppress(ValueError):  # 2026-02-30 matches the pattern
            day = date.fromisoformat(text)
    if day is None:
        errors.append(RowError(index, "date", "format", "must be a date, YYYY-MM-DD", line))
    if errors or day is None:
        return errors
    return OutcomeRow(decision_id, status, day)


def parse_json_rows(items: Any) -> tuple[list[OutcomeRow], list[RowError]]:
    """Rows from a decoded JSON body (a list of objects)."""
    if not isinstance(items, list):
        raise bad_request("Send a JSON list of {decision_id, status, date} objects.")
    _check_count(len(items))
    rows: list[OutcomeRow] = []
    errors: list[RowError] = []
    for i, item in enumerate(items):
        parsed = parse_row(item, i)
        if isinstance(parsed, list):
            errors.extend(parsed)
        else:
            rows.append(parsed)
    return rows, errors


def parse_csv_rows(body: bytes) -> tuple[list[OutcomeRow], list[RowError]]:
    """Rows from a CSV body with the header ``decision_id,status,date``."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise bad_request("The CSV must be UTF-8 text.") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[OutcomeRow] = []
    errors: list[RowError] = []
    try:
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != list(FIELDS):
            raise bad_request(f"The first CSV line must be the header {','.join(FIELDS)}.")
        for i, values in enumerate(reader):
            _check_count(i + 1)
            if len(values) != len(FIELDS):
                detail = f"has {len(values)} columns, expected {len(FIELDS)}"
                errors.append(RowError(i, "", "columns", detail, reader.line_num))
                continue
            item = dict(zip(FIELDS, (v.strip() for v in values), strict=True))
            parsed = parse_row(item, i, reader.line_num)
            if isinstance(parsed, list):
                errors.extend(parsed)
            else:
                rows.append(parsed)
    except csv.Error as exc:
        raise bad_request(f"Unreadable CSV at line {reader.line_num}: {exc}") from None
    if not rows and not errors:
        raise bad_request("The CSV holds no rows.")
    return rows, errors


def _check_count(count: int) -> None:
    if count > MAX_BATCH_ROWS:
        raise Problem(
            413,
            "too-many-rows",
            "Too many rows",
            f"A batch may hold at most {MAX_BATCH_ROWS} rows; split it.",
        )


def batch_problem(errors: Sequence[RowError]) -> Problem:
    """422 naming every bad row; nothing of the batch was recorded."""
    return Problem(
        422,
        "invalid-rows",
        "Some rows cannot be recorded",
        f"{len({e.index for e in errors})} row(s) are invalid; no row was recorded.",
        tuple(e.field_error() for e in errors[:1000]),
    )


class OutcomeLog:
    """Record and read loan outcomes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, decision_id: str) -> OutcomeRecord | None:
        """The outcome recorded for ``decision_id``, or ``None``."""
        try:
            with self.engine.connect() as conn:
                row = conn.execute(
                    sa.select(outcomes).where(outcomes.c.decision_id == decision_id)
                ).first()
        except DB_ERRORS as exc:
            raise LogUnavailable(type(exc).__name__) from exc
        return None if row is None else _record(row)

    def record(self, rows: Sequence[OutcomeRow], recorded_by: str) -> Recorded | list[RowError]:
        """Record every row, or none: the per-row errors when any row is refused.

        Row errors carry codes ``not-found`` (no such decision), ``not-granted`` (the
        loan was never granted), ``conflict`` (another outcome is on record, or the
        batch gives two), ``before-decision`` and ``future`` (the date).
        """
        now = datetime.now(UTC)
        latest = now.date() + timedelta(days=1)  # callers a time zone ahead of UTC
        try:
            with self.engine.begin() as conn:
                facts = self._facts(conn, sorted({r.decision_id for r in rows}))
                errors: list[RowError] = []
                fresh: dict[str, OutcomeRow] = {}
                unchanged = 0
                for i, row in enumerate(rows):
                    error = _check(row, facts.get(row.decision_id), fresh, latest)
                    if error is not None:
                        errors.append(RowError(i, *error))
                    elif facts[row.decision_id]["existing"] is not None or row.decision_id in fresh:
                        unchanged += 1
                    else:
                        fresh[row.decision_id] = row
                if errors:
                    return errors
                if fresh:
                    conn.execute(
                        sa.insert(outcomes),
                        [
                            {
                                "decision_id": r.decision_id,
                                "status": r.status,
                                "outcome_date": r.date,
                                "recorded_by": recorded_by,
                                "recorded_at": now,
                            }
                            for r in fresh.values()
                        ],
                    )
        except IntegrityError:
            raise conflict(
                "Another upload recorded some of these outcomes meanwhile; retry."
            ) from None
        except DB_ERRORS as exc:
            raise LogUnavailable(type(exc).__name__) from exc
        return Recorded(len(fresh), unchanged)

    @staticmethod
    def _facts(conn: sa.Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Per known decision id: its outcome, date, review verdict and recorded outcome."""
        d, r, o = decisions.c, reviews.c, outcomes.c
        facts: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            stmt = (
                sa.select(d.id, d.outcome, d.received_at, r.final_outcome, o.status, o.outcome_date)
                .outerjoin(reviews, r.decision_id == d.id)
                .outerjoin(outcomes, o.decision_id == d.id)
                .where(d.id.in_(chunk))
            )
            for row in conn.execute(stmt):
                received = row.received_at
                if received.tzinfo is None:
                    received = received.replace(tzinfo=UTC)
                facts[row.id] = {
                    "granted": row.outcome == "approve" or row.final_outcome == "approve",
                    "outcome": row.outcome,
                    "reviewed": row.final_outcome,
                    "day": received.date(),
                    "existing": (row.status, row.outcome_date) if row.status else None,
                }
        return facts


def _check(
    row: OutcomeRow,
    fact: dict[str, Any] | None,
    fresh: dict[str, OutcomeRow],
    latest: date,
) -> tuple[str, str, str] | None:
    """(field, code, detail) of why ``row`` cannot be recorded, or ``None``."""
    if fact is None:
        return "decision_id", "not-found", f"no decision with id {row.decision_id}"
    if not fact["granted"]:
        why = (
            "referred and not yet approved by a reviewer"
            if fact["outcome"] == "refer" and fact["reviewed"] is None
            else f"the loan was not granted (outcome {fact['reviewed'] or fact['outcome']})"
        )
        return "decision_id", "not-granted", why
    if row.date < fact["day"]:
        return "date", "before-decision", f"is before the decision ({fact['day'].isoformat()})"
    if row.date > latest:
        return "date", "future", "is in the future"
    existing = fact["existing"]
    if existing is not None and existing != (row.status, row.date):
        status, day = existing
        return "status", "conflict", f"an outcome is already recorded: {status} on {day}"
    earlier = fresh.get(row.decision_id)
    if earlier is not None and earlier != row:
        return "status", "conflict", "the batch gives this decision two different outcomes"
    return None


def _record(row: Any) -> OutcomeRecord:
    recorded = row.recorded_at
    if recorded.tzinfo is None:
        recorded = recorded.replace(tzinfo=UTC)
    return OutcomeRecord(row.decision_id, row.status, row.outcome_date, row.recorded_by, recorded)
