"""Claims on referrals: a reviewer takes a referred decision so that no one else works it
at the same time.

A claim lives :data:`CLAIM_TTL` (then anyone may take the referral), ends when its review
is recorded, or when the reviewer lets it go. Taking is one conditional UPDATE or one INSERT,
so two reviewers taking the same referral at once on any workers or hosts end with one
holder: the database's primary key decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from gateway.db import aware
from gateway.tables import ReviewClaim

claims: sa.Table = ReviewClaim.__table__  # type: ignore[assignment]

#: How long a claim holds without the review being recorded.
CLAIM_TTL = timedelta(minutes=30)


@dataclass(frozen=True)
class Claim:
    """Who works a referral, since when."""

    decision_id: str
    reviewer: str
    claimed_at: datetime

    @property
    def expires_at(self) -> datetime:
        """When anyone may take the referral again."""
        return self.claimed_at + CLAIM_TTL


class ReviewClaims:
    """Take, read and release claims in the gateway's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def take(self, decision_id: str, reviewer: str) -> Claim:
        """Claim ``decision_id`` for ``reviewer`` unless another holds a live claim; the
        holder afterwards (``reviewer``'s own claim when taken or already theirs)."""
        now = datetime.now(UTC)
        c = claims.c
        with self.engine.begin() as conn:
            renewed = conn.execute(
                sa.update(claims)
                .where(
                    c.decision_id == decision_id,
                    sa.or_(c.reviewer == reviewer, c.claimed_at < now - CLAIM_TTL),
                )
                .values(reviewer=reviewer, claimed_at=now)
            ).rowcount
        if renewed:
            return Claim(decision_id, reviewer, now)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(claims).values(
                        decision_id=decision_id, reviewer=reviewer, claimed_at=now
                    )
                )
            return Claim(decision_id, reviewer, now)
        except IntegrityError:  # someone else's live claim (or no such decision)
            held = self.holders([decision_id]).get(decision_id)
            if held is None:
                raise
            return held

    def holders(self, decision_ids: Iterable[str]) -> dict[str, Claim]:
        """The live claims on ``decision_ids``."""
        wanted = list(decision_ids)
        if not wanted:
            return {}
        cutoff = datetime.now(UTC) - CLAIM_TTL
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(claims).where(
                    claims.c.decision_id.in_(wanted), claims.c.claimed_at >= cutoff
                )
            ).all()
        return {r.decision_id: Claim(r.decision_id, r.reviewer, aware(r.claimed_at)) for r in rows}

    def release(self, decision_id: str, reviewer: str) -> None:
        """Let go of ``reviewer``'s claim on ``decision_id`` (nothing if it is not theirs)."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.delete(claims).where(
                    claims.c.decision_id == decision_id, claims.c.reviewer == reviewer
                )
            )
