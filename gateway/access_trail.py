"""The access trail: every read of decisions, recorded as it happens.

Who (the token's subject through the API, the operating-system user through the CLI),
when, through which route or command, with which query (normalised JSON), and how many
records it returned where that is known. One INSERT per read, committed before the
answer leaves: if it cannot be recorded the read fails (503), because an unrecorded read
is not allowed. The table is append-only (PostgreSQL triggers refuse UPDATE, DELETE and
TRUNCATE). Never stored: tokens, secrets, personal values (the query parameters a
reader gives are filters, and decisions' contents are never copied here).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from gateway import ids
from gateway.db import aware
from gateway.decision_log import LogUnavailable, decode_cursor, encode_cursor
from gateway.decision_query import QueryError, parse_query
from gateway.tables import AccessTrailEntry

access_trail: sa.Table = AccessTrailEntry.__table__  # type: ignore[assignment]

CHANNELS = ("api", "soap", "cli", "console")
TRAIL_PARAMS = ("since", "until", "actor", "channel", "cursor", "limit")
DB_ERRORS = (DBAPIError, SQLAlchemyError, OSError)


def os_user() -> str:
    """The operating-system user running a CLI command (``uid:N`` if it has no name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container's uid without a passwd entry
        return f"uid:{os.getuid()}"


def normalised(params: Mapping[str, Any]) -> str:
    """``params`` as compact JSON with sorted keys: equal queries give equal text."""
    return orjson.dumps(dict(params), option=orjson.OPT_SORT_KEYS).decode()


@dataclass(frozen=True)
class TrailQuery:
    """Filters of a read of the trail, newest first."""

    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    channel: str | None = None
    cursor: str | None = None
    limit: int = 50


def parse_trail_query(args: Mapping[str, str]) -> TrailQuery:
    """A :class:`TrailQuery` from string parameters; :class:`QueryError` naming a bad one."""
    for name in args:
        if name not in TRAIL_PARAMS:
            raise QueryError(name, "unknown parameter; allowed: " + ", ".join(TRAIL_PARAMS))
    # The shared parser checks the parameters the two queries have in common.
    common = parse_query(
        {k: v for k, v in args.items() if k in ("since", "until", "limit")},
        allowed=("since", "until", "limit"),
    )
    values: dict[str, Any] = {"since": common.since, "until": common.until, "limit": common.limit}
    if "actor" in args:
        actor = args["actor"]
        if not 0 < len(actor) <= 255 or "\x00" in actor:
            raise QueryError("actor", "must be 1 to 255 characters, without NUL")
        values["actor"] = actor
    if "channel" in args:
        if args["channel"] not in CHANNELS:
            raise QueryError("channel", "must be one of " + ", ".join(CHANNELS))
        values["channel"] = args["channel"]
    if "cursor" in args:
        try:
            decode_cursor(args["cursor"])
        except ValueError:
            raise QueryError("cursor", "not a cursor returned by this API") from None
        values["cursor"] = args["cursor"]
    return TrailQuery(**values)


def _as_dict(row: Any) -> dict[str, Any]:
    at = aware(row.at)
    return {
        "id": row.id,
        "at": at.astimezone(UTC).isoformat(),
        "actor": row.actor,
        "channel": row.channel,
        "action": row.action,
        "params": orjson.loads(row.params),
        "result_count": row.result_count,
        "request_id": row.request_id,
    }


class AccessTrail:
    """Record and read the access trail in the gateway's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(
        self,
        *,
        actor: str,
        channel: str,
        action: str,
        params: Mapping[str, Any],
        result_count: int | None = None,
        request_id: str | None = None,
    ) -> str:
        """Record one read (one INSERT, committed); its id. :class:`LogUnavailable` if the
        database refuses it: the caller must then not answer the read."""
        entry_id = ids.new_id()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(access_trail).values(
                        id=entry_id,
                        at=datetime.now(UTC),
                        actor=actor[:255],
                        channel=channel,
                        action=action[:200],
                        params=normalised(params),
                        result_count=result_count,
                        request_id=request_id[:100] if request_id else None,
                    )
                )
        except DB_ERRORS as exc:
            raise LogUnavailable(type(exc).__name__) from exc
        return entry_id

    def read(self, q: TrailQuery) -> tuple[list[dict[str, Any]], str | None]:
        """Entries matching ``q``, newest first, and the cursor of the next page."""
        c = access_trail.c
        where: list[Any] = []
        if q.since is not None:
            where.append(c.at >= q.since)
        if q.until is not None:
            where.append(c.at < q.until)
        if q.actor is not None:
            where.append(c.actor == q.actor)
        if q.channel is not None:
            where.append(c.channel == q.channel)
        if q.cursor is not None:
            where.append(c.id < decode_cursor(q.cursor))
        stmt = sa.select(access_trail).where(*where).order_by(c.id.desc()).limit(q.limit + 1)
        try:
            with self.engine.connect() as conn:
                rows: Sequence[Any] = conn.execute(stmt).all()
        except DB_ERRORS as exc:
            raise LogUnavailable(type(exc).__name__) from exc
        page = rows[: q.limit]
        more = len(rows) > q.limit and page
        return [_as_dict(row) for row in page], (encode_cursor(page[-1].id) if more else None)
