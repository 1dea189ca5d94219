"""Queries over the decision log: filters, sort orders and keyset cursors.

One parser (:func:`parse_query`) reads the same parameters for every reader of the log:
the REST routes (``GET /v1/decisions``, ``/aggregates``, ``/export``) and the CLI
(``loangate decisions list | aggregate | export``). Every value reaches SQL as a bound
parameter; a bad one is a :class:`QueryError` naming the parameter.

Pages are keyed on (sort key, id), never on offsets: decisions logged while a reader
pages through land before the first page (newest first) or after the last one (oldest
first), so the pages that follow never shift, repeat or skip a record.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from gateway import ids
from gateway.tables import Decision, DecisionReason, Review

decisions: sa.Table = Decision.__table__  # type: ignore[assignment]
reviews: sa.Table = Review.__table__  # type: ignore[assignment]
decision_reasons: sa.Table = DecisionReason.__table__  # type: ignore[assignment]

OUTCOMES = ("approve", "refer", "decline", "rejected", "error")
#: Filters every reader accepts.
FILTERS = (
    "since",
    "until",
    "pipeline",
    "outcome",
    "reason_code",
    "model_name",
    "model_version",
    "client_id",
    "application_id",
    "min_probability",
    "max_probability",
    "reviewed",
    "overridden",
)
#: Sort keys: ``id`` is the time-ordered ULID minted on receipt (the default);
#: ``probability`` sorts decisions without one (rejections, errors) lowest.
SORTS = ("id", "received_at", "probability")
ORDERS = ("desc", "asc")
#: Parameters of a page of records (the list route); exports take the sort without paging.
SORTING = ("sort", "order")
PAGING = ("cursor", "limit")
MAX_LIMIT = 500
MAX_TEXT = 200
#: Probability key given to decisions without a probability, so they sort (lowest) too.
NO_PROBABILITY = -1.0


class QueryError(ValueError):
    """A bad query parameter: ``name`` and what is wrong with it (``detail``)."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.detail = detail


@dataclass(frozen=True)
class DecisionQuery:
    """Filters, sort order and page of a read of the log. ``None`` means no filter."""

    since: datetime | None = None
    until: datetime | None = None
    pipeline: str | None = None
    outcome: str | None = None
    reason_code: str | None = None
    model_name: str | None = None
    model_version: int | None = None
    client_id: str | None = None
    application_id: str | None = None
    min_probability: float | None = None
    max_probability: float | None = None
    #: True: only decisions with a human review; False: only those without one.
    reviewed: bool | None = None
    #: True: only decisions a reviewer overrode (:func:`is_override`); False: all others.
    overridden: bool | None = None
    sort: str = "id"
    order: str = "desc"
    cursor: str | None = None
    limit: int = 50

    def as_params(self) -> dict[str, Any]:
        """The query as JSON-ready parameters that differ from the defaults (for the trail)."""
        defaults = DecisionQuery()
        out: dict[str, Any] = {}
        for name, value in asdict(self).items():
            if value != getattr(defaults, name):
                out[name] = value.isoformat() if isinstance(value, datetime) else value
        return out


def is_override(final_outcome: Any) -> Any:
    """True for a review that overrode the model: only referrals are reviewed, and a
    reviewer *approving* one overturns the adverse lean behind it (declining upholds it).
    The one definition behind the ``overridden`` filter, the exports' ``overridden``
    column and the override report (:meth:`gateway.reviews.ReviewLog.report`)."""
    return final_outcome == "approve"


# --- parsing ------------------------------------------------------------------------------


def parse_query(
    args: Mapping[str, str], allowed: Collection[str] = (*FILTERS, *SORTING, *PAGING)
) -> DecisionQuery:
    """A :class:`DecisionQuery` from string parameters (a query string, CLI options).

    Raises :class:`QueryError` naming the first bad parameter: unknown (not in
    ``allowed``), repeated, of the wrong type or out of range.
    """
    getlist = getattr(args, "getlist", None)
    for name in args:
        if name not in allowed:
            raise QueryError(name, "unknown parameter; allowed: " + ", ".join(sorted(allowed)))
        if getlist is not None and len(getlist(name)) > 1:
            raise QueryError(name, "given more than once")
    values: dict[str, Any] = {}
    for name in ("since", "until"):
        if name in args:
            values[name] = _timestamp(name, args[name])
    for name in ("pipeline", "reason_code", "model_name", "client_id", "application_id"):
        if name in args:
            values[name] = _text(name, args[name])
    for name in ("outcome", "sort", "order"):
        if name in args:
            choices = {"outcome": OUTCOMES, "sort": SORTS, "order": ORDERS}[name]
            if args[name] not in choices:
                raise QueryError(name, "must be one of " + ", ".join(choices))
            values[name] = args[name]
    for name in ("reviewed", "overridden"):
        if name in args:
            if args[name] not in ("true", "false"):
                raise QueryError(name, "must be true or false")
            values[name] = args[name] == "true"
    for name, low, high in (("model_version", 1, 2**31 - 1), ("limit", 1, MAX_LIMIT)):
        if name in args:
            values[name] = _integer(name, args[name], low, high)
    for name in ("min_probability", "max_probability"):
        if name in args:
            values[name] = _probability(name, args[name])
    query = DecisionQuery(**values)
    if query.since and query.until and query.since >= query.until:
        raise QueryError("since", "must be before until")
    floor, ceiling = query.min_probability, query.max_probability
    if floor is not None and ceiling is not None and floor > ceiling:
        raise QueryError("min_probability", "must not exceed max_probability")
    if "cursor" in args:
        decode_cursor(query, args["cursor"])  # a 400 now rather than a surprise later
        query = DecisionQuery(**{**_fields(query), "cursor": args["cursor"]})
    return query


def _fields(query: DecisionQuery) -> dict[str, Any]:
    return {f.name: getattr(query, f.name) for f in fields(query)}


def _text(name: str, value: str) -> str:
    if not 0 < len(value) <= MAX_TEXT:
        raise QueryError(name, f"must be 1 to {MAX_TEXT} characters")
    if "\x00" in value:  # PostgreSQL refuses NUL in text: say so instead of failing later
        raise QueryError(name, "must not contain NUL characters")
    return value


def _timestamp(name: str, value: str) -> datetime:
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(name, "must be an ISO 8601 date-time") from None
    if stamp.tzinfo is None:
        raise QueryError(name, "must carry a time zone (e.g. Z)")
    return stamp.astimezone(UTC)  # the log stores UTC (SQLite keeps no offset)


def _integer(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise QueryError(name, "must be an integer") from None
    if not low <= number <= high:
        raise QueryError(name, f"must be between {low} and {high}")
    return number


def _probability(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise QueryError(name, "must be a number") from None
    if math.isnan(number) or not 0.0 <= number <= 1.0:
        raise QueryError(name, "must be between 0 and 1")
    return number


# --- SQL ----------------------------------------------------------------------------------


def conditions(q: DecisionQuery) -> list[ColumnElement[bool]]:
    """The WHERE conditions of ``q``'s filters over ``decisions`` (cursor excluded).

    Subqueries correlate with ``decisions`` only, so a statement may join the tables
    they read (``decision_reasons`` for aggregates, ``reviews`` for exports)."""
    c = decisions.c
    out: list[ColumnElement[bool]] = []
    if q.since is not None:
        out.append(c.received_at >= q.since)
    if q.until is not None:
        out.append(c.received_at < q.until)
    for column, value in (
        (c.pipeline, q.pipeline),
        (c.outcome, q.outcome),
        (c.model_name, q.model_name),
        (c.model_version, q.model_version),
        (c.client_id, q.client_id),
        (c.application_id, q.application_id),
    ):
        if value is not None:
            out.append(column == value)
    if q.min_probability is not None:  # on the sort key's index (no minimum is below 0)
        out.append(sa.func.coalesce(c.probability, NO_PROBABILITY) >= q.min_probability)
    if q.max_probability is not None:
        out.append(c.probability <= q.max_probability)
    if q.reason_code is not None:
        dr = decision_reasons.c
        out.append(
            sa.select(dr.decision_id)
            .where(dr.decision_id == c.id, dr.code == q.reason_code)
            .correlate(decisions)
            .exists()
        )
    r = reviews.c
    if q.reviewed is not None:
        has_review = (
            sa.select(r.decision_id).where(r.decision_id == c.id).correlate(decisions).exists()
        )
        out.append(has_review if q.reviewed else ~has_review)
    if q.overridden is not None:
        override = (
            sa.select(r.decision_id)
            .where(r.decision_id == c.id, is_override(r.final_outcome))
            .correlate(decisions)
            .exists()
        )
        out.append(override if q.overridden else ~override)
    return out


def sort_key(sort: str) -> ColumnElement[Any] | None:
    """The expression records are ordered by before their id (``None``: the id alone)."""
    c = decisions.c
    if sort == "received_at":
        return c.received_at
    if sort == "probability":
        return sa.func.coalesce(c.probability, NO_PROBABILITY)
    return None


def sorted_select(q: DecisionQuery, *columns: Any) -> sa.Select[Any]:
    """``SELECT columns, sort_key`` of the records matching ``q``, in its order, after its
    cursor; the caller adds a limit (a page) or streams it (an export)."""
    c = decisions.c
    key = sort_key(q.sort)
    key_column = (key if key is not None else sa.null()).label("sort_key")
    stmt = sa.select(*columns, key_column).where(*conditions(q))
    if q.cursor is not None:
        after_key, after_id = decode_cursor(q, q.cursor)
        stmt = stmt.where(_after(q, key, after_key, after_id))
    if q.order == "desc":
        order = [c.id.desc()] if key is None else [key.desc(), c.id.desc()]
    else:
        order = [c.id.asc()] if key is None else [key.asc(), c.id.asc()]
    return stmt.order_by(*order)


def _after(q: DecisionQuery, key: Any, after_key: Any, after_id: str) -> ColumnElement[bool]:
    """Rows strictly after (key, id) in ``q``'s order: the keyset condition."""
    c = decisions.c
    if q.order == "desc":
        past_id = c.id < after_id
        return (
            past_id if key is None else sa.or_(key < after_key, sa.and_(key == after_key, past_id))
        )
    past_id = c.id > after_id
    return past_id if key is None else sa.or_(key > after_key, sa.and_(key == after_key, past_id))


# --- cursors ------------------------------------------------------------------------------


def _check(payload: bytes) -> str:
    return hashlib.sha256(b"loangate-cursor\x00" + payload).hexdigest()[:16]


def cursor_after(q: DecisionQuery, row: Any) -> str:
    """The cursor of the page after ``row`` (selected by :func:`sorted_select`).

    Opaque to callers: the sort, order, key and id, with a check that a hand-edited or
    truncated cursor fails. It is validated, not secret: it only positions a reader
    within records their scope already lets them read.
    """
    key = row.sort_key
    if isinstance(key, datetime):
        key = (key if key.tzinfo else key.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    payload = orjson.dumps([q.sort, q.order, key, row.id])
    return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + _check(payload)


def decode_cursor(q: DecisionQuery, cursor: str) -> tuple[Any, str]:
    """(sort key, id) of a cursor issued for ``q``'s sort and order; :class:`QueryError`
    otherwise."""
    bad = QueryError("cursor", "not a cursor returned by this API")
    encoded, _, check = cursor.partition(".")
    if len(cursor) > 400:
        raise bad
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        sort, order, key, decision_id = orjson.loads(payload)
    except (ValueError, TypeError):
        raise bad from None
    if check != _check(payload) or not isinstance(decision_id, str):
        raise bad
    if not ids.is_valid(decision_id):
        raise bad
    if (sort, order) != (q.sort, q.order):
        raise QueryError("cursor", f"was issued for sort={sort} order={order}: keep them")
    if sort == "id":
        return None, decision_id
    if sort == "probability":
        if isinstance(key, bool) or not isinstance(key, int | float):
            raise bad
        return float(key), decision_id
    try:
        stamp = datetime.fromisoformat(key)
    except (TypeError, ValueError):
        raise bad from None
    if stamp.tzinfo is None:
        raise bad
    return stamp.astimezone(UTC), decision_id
