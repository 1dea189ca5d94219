"""Building blocks of the OpenAPI document, for every module that describes routes.

:mod:`gateway.api.openapi` assembles the document; route modules describe their own
paths with these (``openapi_paths()``), so each route and its description live together.
"""

from __future__ import annotations

from typing import Any

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def problem(description: str) -> dict[str, Any]:
    """A response with an RFC 9457 problem body."""
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": PROBLEM_REF}},
    }


def json_content(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A JSON response (or request body) with ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An optional query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def path_param(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A path parameter (a string unless ``schema`` says otherwise)."""
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


#: ``Retry-After`` on a 429: whole seconds to wait before retrying.
RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before retrying (a whole number, at least 1)",
    "schema": {"type": "integer", "minimum": 1},
}


def rate_limited() -> dict[str, Any]:
    """The 429 of a client over its rate limit (:mod:`gateway.rate_limits`)."""
    response = problem("The client is over its rate limit; nothing was done (Retry-After)")
    response["headers"] = {"Retry-After": RETRY_AFTER_HEADER}
    return response


#: Responses of every route behind a bearer token.
AUTH_ERRORS = {
    "401": problem("Missing, expired or invalid access token"),
    "403": problem("The token lacks the required scope"),
    "429": rate_limited(),
}
