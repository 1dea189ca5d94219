"""Reading request inputs the same way on every route: JSON bodies and page parameters."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import orjson
from flask import request

from gateway import ids
from gateway.decision_log import decode_cursor
from gateway.errors import FieldError, Problem, bad_request, not_found

MAX_LIMIT = 500


def unsupported_media_type(expected: str) -> Problem:
    return Problem(415, "unsupported-media-type", "Unsupported media type", f"Send {expected}.")


def is_json() -> bool:
    """True when the request body is declared as JSON (``application/json`` or ``+json``)."""
    mimetype = request.mimetype or ""
    return mimetype == "application/json" or mimetype.endswith("+json")


def json_body() -> Any:
    """The decoded JSON body: 415 if it is not declared JSON, 400 if it does not parse."""
    if not is_json():
        raise unsupported_media_type("a JSON body (application/json)")
    try:
        return orjson.loads(request.get_data(cache=False))
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"The body is not valid JSON: {exc}") from None


def query_error(name: str, detail: str) -> Problem:
    """400 naming a bad query parameter."""
    return bad_request(
        f"Invalid query parameter {name!r}: {detail}",
        (FieldError(f"/query/{name}", "invalid", detail),),
    )


def page_params(args: Mapping[str, str], allowed: Collection[str]) -> dict[str, Any]:
    """``cursor`` and ``limit`` (default 50) checked; any parameter not in ``allowed`` is a 400."""
    known = {"cursor", "limit", *allowed}
    for name in args:
        if name not in known:
            raise query_error(name, "unknown parameter; allowed: " + ", ".join(sorted(known)))
    out: dict[str, Any] = {"cursor": None, "limit": 50}
    if "limit" in args:
        try:
            out["limit"] = int(args["limit"])
        except ValueError:
            raise query_error("limit", "must be an integer") from None
        if not 1 <= out["limit"] <= MAX_LIMIT:
            raise query_error("limit", f"must be between 1 and {MAX_LIMIT}")
    if "cursor" in args:
        try:
            decode_cursor(args["cursor"])
        except ValueError:
            raise query_error("cursor", "not a cursor returned by this API") from None
        out["cursor"] = args["cursor"]
    return out


def decision_id_or_404(decision_id: str) -> str:
    """``decision_id`` if it has the shape of an id; a 404 before any database lookup."""
    if not ids.is_valid(decision_id):
        raise not_found(f"No decision with id {decision_id[:40]!r}.")
    return decision_id
