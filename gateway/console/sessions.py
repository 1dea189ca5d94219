"""Console sessions: kept on the server, named by a random id in a signed cookie.

The cookie (Flask's signed session, HttpOnly, SameSite=Lax, Secure behind TLS) carries only
the session's id; the ``console_sessions`` table keeps the id's SHA-256, the user, the CSRF
token and the times. Every request checks the row and the account behind it, so signing out,
an idle or absolute timeout, or a disabled account ends a session at once on every worker,
and a copied cookie is worth nothing after sign-out.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from gateway.console.roles import scopes_of
from gateway.console.users import users
from gateway.db import aware
from gateway.tables import ConsoleSession

sessions: sa.Table = ConsoleSession.__table__  # type: ignore[assignment]

#: last_seen_at is written at most this often: a page view is a read, not a write.
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class SessionSettings:
    """Timeouts of the ``console`` configuration section."""

    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)

    @classmethod
    def from_config(cls, console: dict[str, Any]) -> SessionSettings:
        """From ``console.idle_timeout_minutes`` and ``console.absolute_timeout_hours``."""
        return cls(
            idle=timedelta(minutes=float(console.get("idle_timeout_minutes", 30))),
            absolute=timedelta(hours=float(console.get("absolute_timeout_hours", 12))),
        )


@dataclass(frozen=True)
class ActiveSession:
    """The signed-in person of a request."""

    user_name: str
    role: str
    csrf_token: str
    created_at: datetime

    @property
    def scopes(self) -> frozenset[str]:
        """The API scopes of the person's role (:mod:`gateway.console.roles`)."""
        return scopes_of(self.role)

    @property
    def actor(self) -> str:
        """How the access trail names the person."""
        return f"user:{self.user_name}"


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def start(engine: Engine, user_name: str) -> tuple[str, str]:
    """A new session of ``user_name``: (its id, for the cookie; its CSRF token)."""
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(sessions).values(
                id_hash=_hash(session_id),
                user_name=user_name,
                csrf_token=csrf,
                created_at=now,
                last_seen_at=now,
                ended_at=None,
            )
        )
    return session_id, csrf


def load(engine: Engine, session_id: str, settings: SessionSettings) -> ActiveSession | None:
    """The live session named ``session_id``, or None when it is unknown, ended, idle or
    too old, or its account is disabled (an expired session is ended on the way)."""
    now = datetime.now(UTC)
    key = _hash(session_id)
    query = (
        sa.select(sessions, users.c.role, users.c.disabled)
        .join(users, users.c.name == sessions.c.user_name)
        .where(sessions.c.id_hash == key)
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None or row.ended_at is not None:
        return None
    created, seen = aware(row.created_at), aware(row.last_seen_at)
    if row.disabled or now - seen > settings.idle or now - created > settings.absolute:
        end(engine, session_id)
        return None
    if now - seen > TOUCH_EVERY:
        with engine.begin() as conn:
            conn.execute(
                sa.update(sessions).where(sessions.c.id_hash == key).values(last_seen_at=now)
            )
    return ActiveSession(row.user_name, row.role, row.csrf_token, created)


def end(engine: Engine, session_id: str) -> None:
    """End the session named ``session_id`` (sign-out, timeout): it is never valid again."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(sessions)
            .where(sessions.c.id_hash == _hash(session_id), sessions.c.ended_at.is_(None))
            .values(ended_at=datetime.now(UTC))
        )


def end_all(engine: Engine, user_name: str) -> int:
    """End every live session of ``user_name``; how many there were."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                sa.update(sessions)
                .where(sessions.c.user_name == user_name, sessions.c.ended_at.is_(None))
                .values(ended_at=datetime.now(UTC))
            ).rowcount
        )
