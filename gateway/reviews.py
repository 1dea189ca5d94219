"""Human review of referred decisions: the queue, the reviews, and the override report.

A review is a record *linked* to a decision (table ``reviews``), never a change to it:
the logged decision row and its document stay as they were written. A decision is
reviewed at most once (a unique key), and only when the policy referred it. The
decision's reason codes are indexed beside the review (``review_reasons``) when it is
recorded, so the override report is one ``GROUP BY`` in the database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from gateway import ids
from gateway.decision_log import LogUnavailable, decode_cursor, encode_cursor
from gateway.decision_query import is_override
from gateway.errors import Problem, not_found
from gateway.tables import Decision, Review, ReviewReason

FINAL_OUTCOMES = ("approve", "decline")
#: Longest justification kept (characters): room for a paragraph, not for a document.
MAX_JUSTIFICATION = 4000

decisions: sa.Table = Decision.__table__  # type: ignore[assignment]
reviews: sa.Table = Review.__table__  # type: ignore[assignment]
review_reasons: sa.Table = ReviewReason.__table__  # type: ignore[assignment]

DB_ERRORS = (DBAPIError, SQLAlchemyError, OSError)


def conflict(detail: str) -> Problem:
    """409: the decision is not in a state that allows this."""
    return Problem(409, "conflict", "Conflict", detail)


@dataclass(frozen=True)
class ReviewRecord:
    """A stored review."""

    review_id: str
    decision_id: str
    reviewer: str
    final_outcome: str
    justification: str
    reviewed_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "review_id": self.review_id,
            "decision_id": self.decision_id,
            "model_outcome": "refer",  # only referrals are reviewed
            "final_outcome": self.final_outcome,
            "reviewer": self.reviewer,
            "justification": self.justification,
            "reviewed_at": self.reviewed_at.isoformat(),
        }


def _record(row: Any) -> ReviewRecord:
    created = row.created_at
    if created.tzinfo is None:  # SQLite hands back naive UTC
        created = created.replace(tzinfo=UTC)
    return ReviewRecord(
        row.id, row.decision_id, row.reviewer, row.final_outcome, row.justification, created
    )


class ReviewLog:
    """Record and read reviews in the gateway's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def submit(
        self, decision_id: str, reviewer: str, final_outcome: str, justification: str
    ) -> ReviewRecord:
        """Record the review of a referred decision (input already validated).

        Raises a 404 :class:`Problem` for an unknown decision, 409 when it was not
        referred or is already reviewed.
        """
        record = ReviewRecord(
            ids.new_id(), decision_id, reviewer, final_outcome, justification, datetime.now(UTC)
        )
        try:
            with self.engine.begin() as conn:
                found = conn.execute(
                    sa.select(decisions.c.outcome, decisions.c.document).where(
                        decisions.c.id == decision_id
                    )
                ).first()
                if found is None:
                    raise not_found(f"No decision with id {decision_id!r}.")
                if found.outcome != "refer":
                    raise conflict(
                        f"Decision {decision_id} was not referred (outcome {found.outcome!r}): "
                        "only referrals are reviewed."
                    )
                conn.execute(
                    sa.insert(reviews).values(
                        id=record.review_id,
                        decision_id=decision_id,
                        reviewer=reviewer,
                        final_outcome=final_outcome,
                        justification=justification,
                        created_at=record.reviewed_at,
                    )
                )
                codes = {r["code"] for r in orjson.loads(found.document)["reason_codes"]}
                if codes:
                    conn.execute(
                        sa.insert(review_reasons),
                        [{"review_id": record.review_id, "code": c} for c in sorted(codes)],
                    )
        except IntegrityError:
            raise conflict(f"Decision {decision_id} has already been reviewed.") from None
        except DB_ERRORS as exc:
            raise LogUnavailable(type(exc).__name__) from exc
        return record

    def get(self, decision_id: str) -> ReviewRecord | None:
        """The review of ``decision_id``, or ``None``."""
        try:
            with self.engine.connect() as conn:
                row = conn.execute(
                    sa.select(reviews).where(reviews.c.decision_id == decision_id)
                ).first()
        except DB_ERRORS as exc:
            raise LogUnavailable(type(exc).__name__) from exc
        return None if row is None else _record(row)

    def queue(
        self,
        done: bool = False,
        cursor: str | None = None,
        limit: int = 50,
        show: Callable[[Sequence[bytes]], list[bytes]] | None = None,
    ) -> tuple[list[bytes], str | None]:
        """A page of the queue as JSON items ``{"decision": …, "review": …}``.

        Pending (``done=False``): referred decisions without a review, oldest first, so
        reviewers work first-in first-out. Done: reviewed decisions, latest review first.
        Pages are keyed on time-sortable ids; a cursor must come from a previous page.
        """
        d, r = decisions.c, reviews.c
        if done:
            stmt = sa.select(d.document, *reviews.columns).join(reviews, r.decision_id == d.id)
            if cursor is not None:
                stmt = stmt.where(r.id < decode_cursor(cursor))
            stmt = stmt.order_by(r.id.desc())
        else:
            reviewed = sa.select(r.decision_id).where(r.decision_id == d.id).exists()
            stmt = sa.select(d.id, d.document).where(d.outcome == "refer", ~reviewed)
            if cursor is not None:
                stmt = stmt.where(d.id > decode_cursor(cursor))
            stmt = stmt.order_by(d.id.asc())
        try:
            with self.engine.connect() as conn:
                rows: Sequence[Any] = conn.execute(stmt.limit(limit + 1)).all()
        except DB_ERRORS as exc:
            raise LogUnavailable(type(exc).__name__) from exc
        page = rows[:limit]
        stored = [row.document.encode() for row in page]
        # ``show``: what the reader may see of each document (personal values, see
        # gateway.personal.views); stored bytes as they are without it.
        shown = show(stored) if show is not None else stored
        items = [
            b'{"decision":'
            + document
            + b',"review":'
            + (orjson.dumps(_record(row).as_dict()) if done else b"null")
            + b"}"
            for row, document in zip(page, shown, strict=True)
        ]
        more = len(rows) > limit and page
        return items, (encode_cursor(page[-1].id) if more else None)

    def report(self) -> dict[str, Any]:
        """Override rates per reason code, aggregated in the database.

        For each reason code of reviewed referrals: how many were reviewed, approved and
        declined by a reviewer, and the override rate (approved / reviewed: how often a
        human overturned the adverse lean behind the referral). A referral with several
        codes counts once under each; ``totals`` counts each review once.
        """
        r, rr = reviews.c, review_reasons.c
        approved = sa.func.sum(sa.case((is_override(r.final_outcome), 1), else_=0))
        declined = sa.func.sum(sa.case((r.final_outcome == "decline", 1), else_=0))
        per_code = (
            sa.select(rr.code, sa.func.count().label("reviewed"), approved, declined)
            .select_from(review_reasons.join(reviews, r.id == rr.review_id))
            .group_by(rr.code)
            .order_by(rr.code)
        )
        totals = sa.select(sa.func.count(), approved, declined).select_from(reviews)
        d = decisions.c
        reviewed = sa.select(r.decision_id).where(r.decision_id == d.id).exists()
        pending = sa.select(sa.func.count()).where(d.outcome == "refer", ~reviewed)
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(per_code).all()
                total = conn.execute(totals).one()
                waiting = conn.execute(pending).scalar_one()
        except DB_ERRORS as exc:
            raise LogUnavailable(type(exc).__name__) from exc
        return {
            "reason_codes": [_rates(row[0], row[1], row[2], row[3]) for row in rows],
            "totals": {**_rates(None, total[0], total[1], total[2]), "pending": int(waiting)},
        }


def _rates(code: str | None, reviewed: int, approved: Any, declined: Any) -> dict[str, Any]:
    reviewed, approved, declined = int(reviewed), int(approved or 0), int(declined or 0)
    out: dict[str, Any] = {} if code is None else {"code": code}
    out.update(
        reviewed=reviewed,
        approved=approved,
        declined=declined,
        override_rate=round(approved / reviewed, 4) if reviewed else None,
    )
    return out
