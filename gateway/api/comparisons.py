"""Shadow comparisons and business impact over HTTP (``monitoring:read``).

``GET /v1/monitoring/shadow`` and ``GET /v1/monitoring/impact`` take ``pipeline``,
``since`` and ``until``; see :mod:`gateway.comparisons` for what they report.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from gateway.auth import require_scopes
from gateway.comparisons import business_impact, shadow_comparison
from gateway.decision_query import DecisionQuery, QueryError, parse_query
from gateway.http import json_response
from gateway.state import gateway_state

from .inputs import query_error
from .spec import AUTH_ERRORS, json_content, problem, query

bp = Blueprint("comparisons", __name__)

WINDOW = ("pipeline", "since", "until")


def _window() -> DecisionQuery:
    try:
        return parse_query(request.args, allowed=WINDOW)
    except QueryError as exc:
        raise query_error(exc.name, exc.detail) from None


@bp.get("/v1/monitoring/shadow")
@require_scopes("monitoring:read")
def shadow() -> Response:
    """How each shadow model's scores and outcomes compare with the champion's."""
    q = _window()
    items = shadow_comparison(gateway_state().engine, q.pipeline, q.since, q.until)
    return json_response({"items": items})


@bp.get("/v1/monitoring/impact")
@require_scopes("monitoring:read")
def impact() -> Response:
    """Approval and bad rates per model and policy version, and per shadow baseline."""
    q = _window()
    return json_response(business_impact(gateway_state().engine, q.pipeline, q.since, q.until))


def openapi_paths() -> dict[str, Any]:
    """The OpenAPI description of these routes (merged by :mod:`gateway.api.openapi`)."""
    params = [
        query("pipeline", {"type": "string"}, "only this pipeline"),
        query("since", {"type": "string", "format": "date-time"}, "received at or after"),
        query("until", {"type": "string", "format": "date-time"}, "received before"),
    ]
    common = {
        "tags": ["monitoring"],
        "security": [{"bearer": ["monitoring:read"]}],
        "parameters": params,
    }
    errors = {"400": problem("Bad query parameter"), **AUTH_ERRORS}
    return {
        "/v1/monitoring/shadow": {
            "get": {
                **common,
                "summary": "Shadow models against the champion on the same requests",
                "responses": {
                    "200": json_content(
                        {"type": "object", "properties": {"items": {"type": "array"}}},
                        "One entry per shadow model version",
                    ),
                    **errors,
                },
            }
        },
        "/v1/monitoring/impact": {
            "get": {
                **common,
                "summary": "Approval and bad rates per model and policy, and per baseline",
                "responses": {
                    "200": json_content(
                        {
                            "type": "object",
                            "properties": {
                                "models": {"type": "array"},
                                "baselines": {"type": "array"},
                            },
                        },
                        "The business impact",
                    ),
                    **errors,
                },
            }
        },
    }
