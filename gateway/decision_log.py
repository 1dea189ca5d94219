"""The decision log: append-only storage of decision documents, and its queries.

``append`` is one INSERT and one commit: the caller is answered only after it
returns. Any database failure surfaces as :class:`LogUnavailable`, which the API
turns into a retryable 503, so an answer is never given without its record.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Table, insert, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from gateway.decision_query import DecisionQuery as DecisionQuery  # re-exported
from gateway.decision_query import cursor_after, sorted_select
from gateway.log_writer import GroupCommitter, RowConflict, Rows, RowWriter
from gateway.log_writer import LogUnavailable as LogUnavailable  # re-exported
from gateway.tables import Decision

decisions: Table = Decision.__table__  # type: ignore[assignment]


#: Rows stored with each decision in the decision's own transaction (index tables, an
#: outbox...): called with the decision document, it returns ``(table, row)`` pairs. A
#: companion row is committed exactly when its decision is, never one without the other.
Companion = Callable[[Mapping[str, Any]], Iterable[tuple[Table, dict[str, Any]]]]


class DuplicateIdempotencyKey(Exception):
    """Another record already holds this client's idempotency key."""


@dataclass(frozen=True)
class StoredDecision:
    """A logged decision as stored: its request hash, status code and document."""

    id: str
    request_hash: str
    status_code: int
    document: bytes

    def parsed(self) -> dict[str, Any]:
        doc: dict[str, Any] = orjson.loads(self.document)
        return doc


def encode_cursor(decision_id: str) -> str:
    return base64.urlsafe_b64encode(decision_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The decision id a cursor points after; ``ValueError`` if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("invalid cursor") from exc
    if len(raw) != 26 or not raw.isalnum():
        raise ValueError("invalid cursor")
    return raw


class DecisionLog:
    """Append and read decision records in the gateway's database."""

    def __init__(
        self, engine: Engine, companions: Iterable[Companion] = (), group_commit: bool = False
    ) -> None:
        self.engine = engine
        self._writer = RowWriter(engine)
        #: Shares commits between concurrent request threads (threaded workers); without it,
        #: each append commits on its own.
        self.group_commit = GroupCommitter(self._writer) if group_commit else None
        #: Builders of the rows written with every decision (see :data:`Companion`).
        self.companions: list[Companion] = list(companions)
        #: Seals the personal values of documents about to be stored (set by the personal-data
        #: service); writers that build documents themselves, like the batch runner, use it.
        self.seal_many: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None

    def insert(
        self,
        conn: Connection,
        rows: Sequence[dict[str, Any]],
        documents: Sequence[Mapping[str, Any]],
    ) -> None:
        """Insert ``rows`` (of ``documents``) and their companion rows in ``conn``'s transaction."""
        conn.execute(insert(decisions), list(rows))
        for table, table_rows in self.companion_rows(documents).items():
            conn.execute(insert(table), table_rows)

    def companion_rows(
        self, documents: Iterable[Mapping[str, Any]]
    ) -> dict[Table, list[dict[str, Any]]]:
        """The companion rows of ``documents``, by table."""
        extra: dict[Table, list[dict[str, Any]]] = {}
        for companion in self.companions:
            for document in documents:
                for table, row in companion(document):
                    extra.setdefault(table, []).append(row)
        return extra

    def serve(self, threads: int) -> None:
        """Set the log up for a server process answering on ``threads`` threads: keep the
        write connection, and share commits between threads when there are several."""
        self._writer.keep = True
        if threads > 1 and self.group_commit is None:
            self.group_commit = GroupCommitter(self._writer)

    def rows(self, row: dict[str, Any], document: Mapping[str, Any] | None) -> list[Rows]:
        """The record ``row`` and its companion rows, grouped by table."""
        groups: list[Rows] = [(decisions, [row])]
        if document is not None:
            groups.extend(self.companion_rows([document]).items())
        return groups

    def append(self, row: dict[str, Any], document: Mapping[str, Any] | None = None) -> None:
        """Insert one record (and its companion rows) and commit it durably.

        ``document`` is the record's parsed document, parsed from ``row`` if not given. The
        companion rows are built before any transaction opens; the write itself is one
        round trip (:mod:`gateway.log_writer`), shared with concurrent threads' writes when
        :attr:`group_commit` is on.
        """
        if document is None and self.companions:
            document = orjson.loads(row["document"])
        groups = self.rows(row, document)
        try:
            if self.group_commit is not None:
                self.group_commit.write(groups)
            else:
                with self._writer.lock:
                    self._writer.write(groups)
        except RowConflict as exc:
            if row.get("idempotency_key") is not None:
                raise DuplicateIdempotencyKey(row["idempotency_key"]) from exc
            raise LogUnavailable(type(exc).__name__) from exc

    def _one(self, stmt: Any) -> StoredDecision | None:
        try:
            with self.engine.connect() as conn:
                found = conn.execute(stmt).first()
        except (DBAPIError, SQLAlchemyError, OSError) as exc:
            raise LogUnavailable(type(exc).__name__) from exc
        if found is None:
            return None
        return StoredDecision(
            found.id, found.request_hash, found.status_code, found.document.encode()
        )

    _columns = (
        decisions.c.id,
        decisions.c.request_hash,
        decisions.c.status_code,
        decisions.c.document,
    )

    def get(self, decision_id: str) -> StoredDecision | None:
        """The record with ``decision_id``, or ``None``."""
        return self._one(select(*self._columns).where(decisions.c.id == decision_id))

    def find_by_key(self, client_id: str, key: str) -> StoredDecision | None:
        """The record a client logged under an idempotency key, or ``None``."""
        return self._one(
            select(*self._columns).where(
                decisions.c.client_id == client_id, decisions.c.idempotency_key == key
            )
        )

    def query(self, q: DecisionQuery) -> tuple[list[bytes], str | None]:
        """Documents matching ``q`` (in its order, newest first by default) and the cursor
        of the next page.

        Pages are keyed on (sort key, time-sortable id), so decisions logged while a client
        pages through never shift or repeat the pages that follow
        (:mod:`gateway.decision_query`).
        """
        c = decisions.c
        stmt = sorted_select(q, c.id, c.document).limit(q.limit + 1)
        try:
            with self.engine.connect() as conn:
                rows: Sequence[Any] = conn.execute(stmt).all()
        except (DBAPIError, SQLAlchemyError, OSError) as exc:
            raise LogUnavailable(type(exc).__name__) from exc
        page = rows[: q.limit]
        next_cursor = cursor_after(q, page[-1]) if len(rows) > q.limit and page else None
        return [row.document.encode() for row in page], next_cursor

    def ping(self) -> bool:
        """True if the database answers and holds the decision log's table."""
        try:
            with self.engine.connect() as conn:
                conn.execute(select(decisions.c.id).limit(0))
            return True
        except (DBAPIError, SQLAlchemyError, OSError):
            return False
