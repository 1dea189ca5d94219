"""HTTP helpers shared by every blueprint: JSON and problem+json responses."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from flask import Response, g, request

from gateway.errors import Problem
from gateway.record import caller_view

if TYPE_CHECKING:
    from gateway.decisions import Result

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


def answer_decision(
    result: Result, render: Callable[[dict[str, Any], int, dict[str, str]], Response]
) -> Response:
    """The HTTP answer to a decided request, whatever the adapter.

    ``Location`` names the logged record and ``Idempotent-Replayed`` marks a replay;
    a rejection or error is answered as problem+json, a decision by ``render(caller
    view of the document, status, headers)`` in the adapter's own format.
    """
    headers = {"Location": f"/v1/decisions/{result.document['decision_id']}"}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    if result.problem is not None:
        result.problem.headers.update(headers)
        return problem_response(result.problem)
    return render(caller_view(result.document), result.status, headers)
