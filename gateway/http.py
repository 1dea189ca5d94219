"""HTTP helpers shared by every blueprint: JSON and problem+json responses."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, g, request

from gateway.errors import Problem

PROBLEM_JSON = "application/problem+json"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialised with orjson (once)."""
    return Response(orjson.dumps(body), status=status, headers=headers, mimetype="application/json")


def raw_json_response(
    payload: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A response whose JSON body is already serialised."""
    return Response(payload, status=status, headers=headers, mimetype="application/json")


def problem_response(problem: Problem) -> Response:
    """An RFC 9457 ``application/problem+json`` response for ``problem``."""
    body = problem.as_dict(instance=request.path, request_id=g.get("request_id"))
    return Response(
        orjson.dumps(body), status=problem.status, headers=problem.headers, mimetype=PROBLEM_JSON
    )
