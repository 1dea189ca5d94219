"""API clients of the authorization server, stored in the ``oauth_clients`` table.

A client's secret is shown once, at creation, and stored only as a salted hash. The secret is
32 random bytes (256 bits), so a slow password KDF would add no protection worth its cost;
the hash is werkzeug's self-describing format, so the method can change without a migration.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from werkzeug.security import check_password_hash, generate_password_hash

from gateway.auth.scopes import parse_scopes, unknown_scopes
from gateway.tables import OAuthClient

#: ~5 ms per check: bounds the CPU a flood of wrong secrets can burn at the token endpoint.
SECRET_HASH_METHOD = "pbkdf2:sha256:20000"
CLIENT_ID_PREFIX = "lgc_"


@dataclass(frozen=True)
class ClientRecord:
    """A stored client. ``secret_hash`` is kept out of ``repr`` so it never reaches a log."""

    client_id: str
    name: str
    scopes: frozenset[str]
    created_at: datetime
    disabled: bool
    secret_hash: str = field(repr=False)

    def check_secret(self, secret: str) -> bool:
        """Constant-time check of ``secret`` against the stored hash."""
        if not isinstance(secret, str) or not secret:
            return False
        return check_password_hash(self.secret_hash, secret)


def _record(row: Any) -> ClientRecord:  # a Row of oauth_clients
    return ClientRecord(
        client_id=row.client_id,
        name=row.name,
        scopes=parse_scopes(row.scopes),
        created_at=row.created_at,
        disabled=bool(row.disabled),
        secret_hash=row.secret_hash,
    )


def validate_scopes(scopes: str | Iterable[str]) -> frozenset[str]:
    """Parse ``scopes`` and check each is known; raises ``ValueError`` naming the unknown."""
    parsed = parse_scopes(scopes)
    if not parsed:
        raise ValueError("at least one scope is required")
    bad = unknown_scopes(parsed)
    if bad:
        raise ValueError(f"unknown scope(s): {', '.join(bad)}")
    return parsed


def create_client(engine: Engine, name: str, scopes: str | Iterable[str]) -> tuple[str, str]:
    """Create a client; returns ``(client_id, secret)``. The secret is not retrievable later."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ValueError("name must be 1 to 200 characters")
    granted = validate_scopes(scopes)
    client_id = CLIENT_ID_PREFIX + secrets.token_hex(10)
    secret = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(OAuthClient).values(
                client_id=client_id,
                name=name,
                secret_hash=generate_password_hash(secret, method=SECRET_HASH_METHOD),
                scopes=" ".join(sorted(granted)),
                created_at=datetime.now(UTC),
                disabled=False,
            )
        )
    return client_id, secret


def get_client(engine: Engine, client_id: str) -> ClientRecord | None:
    """The client ``client_id`` (disabled or not), or ``None``."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(OAuthClient.__table__).where(OAuthClient.client_id == client_id)
        ).one_or_none()
    return None if row is None else _record(row)


def list_clients(engine: Engine, *, include_disabled: bool = True) -> list[ClientRecord]:
    """All clients, oldest first."""
    query = sa.select(OAuthClient.__table__).order_by(OAuthClient.created_at, OAuthClient.client_id)
    if not include_disabled:
        query = query.where(OAuthClient.disabled.is_(False))
    with engine.connect() as conn:
        return [_record(row) for row in conn.execute(query)]


def disable_client(engine: Engine, client_id: str) -> bool:
    """Disable a client: it can get no new token. Returns False if there is no such client.

    Tokens it already holds stay valid until they expire (``auth.token_ttl_seconds``): token
    checks read no database, by design.
    """
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(OAuthClient).where(OAuthClient.client_id == client_id).values(disabled=True)
        )
    return bool(result.rowcount)
