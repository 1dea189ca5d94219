"""Governance reads of the decision log (``decisions:read``): aggregates and exports;
and the access trail of those reads (``audit:read``). See docs/auditors.md."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from flask import Blueprint, Response, g, request

from gateway.access_trail import CHANNELS, AccessTrail, parse_trail_query
from gateway.api.access import audited
from gateway.api.inputs import query_error
from gateway.api.spec import AUTH_ERRORS, json_content, problem, query
from gateway.auth import require_scopes
from gateway.decision_aggregates import GROUPS, aggregate
from gateway.decision_export import FORMATS, export_chunks
from gateway.decision_query import (
    FILTERS,
    ORDERS,
    OUTCOMES,
    SORTING,
    SORTS,
    DecisionQuery,
    QueryError,
    parse_query,
)
from gateway.http import json_response
from gateway.state import gateway_state

bp = Blueprint("audit", __name__)


def decision_query(args: Mapping[str, str], allowed: Collection[str]) -> DecisionQuery:
    """:func:`~gateway.decision_query.parse_query`, a bad parameter being a 400 naming it."""
    try:
        return parse_query(args, allowed)
    except QueryError as exc:
        raise query_error(exc.name, exc.detail) from None


def _choice(name: str, choices: Collection[str], default: str | None = None) -> str:
    value = request.args.get(name, default)
    if value is None:
        raise query_error(name, "required; one of " + ", ".join(choices))
    if value not in choices:
        raise query_error(name, "must be one of " + ", ".join(choices))
    return value


@bp.get("/v1/decisions/aggregates")
@require_scopes("decisions:read")
@audited
def decision_aggregates() -> Response:
    """Counts, approval rate and mean probability per day, model, outcome, reason or
    pipeline, under the listing's filters."""
    query = decision_query(request.args, (*FILTERS, "group_by"))
    group_by = _choice("group_by", GROUPS)
    result = aggregate(gateway_state().engine, query, group_by)
    g.trail_params = {**query.as_params(), "group_by": group_by}
    g.trail_result_count = result["totals"]["count"]
    return json_response(result)


@bp.get("/v1/decisions/export")
@require_scopes("decisions:read")
@audited
def export_decisions() -> Response:
    """The matching records as a streamed CSV or Parquet file (facts, reason codes,
    review; no personal application fields)."""
    query = decision_query(request.args, (*FILTERS, *SORTING, "format"))
    fmt = _choice("format", tuple(FORMATS), "csv")
    chunks = export_chunks(gateway_state().engine, query, fmt)
    g.trail_params = {**query.as_params(), "format": fmt}
    return Response(
        chunks,
        mimetype=FORMATS[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="decisions.{fmt}"',
            "Cache-Control": "no-store",
        },
    )


@bp.get("/v1/audit/access-trail")
@require_scopes("audit:read")
def access_trail() -> Response:
    """Who read which decisions, when and with which query; newest first."""
    try:
        query = parse_trail_query(request.args)
    except QueryError as exc:
        raise query_error(exc.name, exc.detail) from None
    trail: AccessTrail = gateway_state().extras["access_trail"]
    items, next_cursor = trail.read(query)
    return json_response({"items": items, "next_cursor": next_cursor})


def _filter_parameters() -> list[dict[str, Any]]:
    text = {"type": "string", "maxLength": 200}
    probability = {"type": "number", "minimum": 0, "maximum": 1}
    return [
        query("since", {"type": "string", "format": "date-time"}, "received at or after"),
        query("until", {"type": "string", "format": "date-time"}, "received before"),
        query("pipeline", text, "pipeline name"),
        query("outcome", {"enum": list(OUTCOMES)}, "the policy's outcome"),
        query("reason_code", text, "one of the decision's reason codes"),
        query("model_name", text, "model name"),
        query("model_version", {"type": "integer", "minimum": 1}, "model version"),
        query("client_id", text, "calling client"),
        query("application_id", text, "caller's application id"),
        query("min_probability", probability, "probability of default at least"),
        query("max_probability", probability, "probability of default at most"),
        query("reviewed", {"type": "boolean"}, "true: with a human review; false: without"),
        query("overridden", {"type": "boolean"}, "true: a reviewer approved the referral"),
    ]


def _sort_parameters() -> list[dict[str, Any]]:
    return [
        query("sort", {"enum": list(SORTS), "default": "id"}, "id is the time of receipt"),
        query("order", {"enum": list(ORDERS), "default": "desc"}, "desc: newest/highest first"),
    ]


def openapi_paths() -> dict[str, Any]:
    """The OpenAPI description of the governance reads (merged by :mod:`gateway.api.openapi`)."""
    read = [{"bearer": ["decisions:read"]}]
    figures = {
        "type": "object",
        "properties": {
            "count": {"type": "integer"},
            "approved": {"type": "integer"},
            "referred": {"type": "integer"},
            "declined": {"type": "integer"},
            "approval_rate": {"type": ["number", "null"]},
            "mean_probability": {"type": ["number", "null"]},
        },
    }
    failures = {
        "400": problem("Bad query parameter (named in errors[0].pointer)"),
        **AUTH_ERRORS,
        "503": problem("The decision log or the access trail is unavailable"),
    }
    return {
        "/v1/decisions": {
            "get": {
                "summary": "List logged decisions, newest first (or sorted), one page",
                "description": "Pages are keyed on (sort key, id): stable while decisions "
                "arrive. Recorded in the access trail.",
                "tags": ["audit"],
                "security": read,
                "parameters": [
                    *_filter_parameters(),
                    *_sort_parameters(),
                    query("cursor", {"type": "string"}, "next_cursor of the previous page"),
                    query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size"),
                ],
                "responses": {
                    "200": json_content(
                        {"$ref": "#/components/schemas/DecisionPage"}, "A page of decisions"
                    ),
                    **failures,
                },
            }
        },
        "/v1/decisions/aggregates": {
            "get": {
                "summary": "Counts, approval rate and mean probability per group",
                "description": "Computed in the database. A record counts once per reason "
                "code when grouped by reason. Recorded in the access trail.",
                "tags": ["audit"],
                "security": read,
                "parameters": [
                    {
                        "name": "group_by",
                        "in": "query",
                        "required": True,
                        "schema": {"enum": list(GROUPS)},
                    },
                    *_filter_parameters(),
                ],
                "responses": {
                    "200": json_content(
                        {
                            "type": "object",
                            "required": ["group_by", "groups", "totals"],
                            "properties": {
                                "group_by": {"enum": list(GROUPS)},
                                "groups": {"type": "array", "items": figures},
                                "totals": figures,
                            },
                        },
                        "Figures per group and in total",
                    ),
                    **failures,
                },
            }
        },
        "/v1/decisions/export": {
            "get": {
                "summary": "Export matching records as CSV or Parquet (streamed)",
                "description": "Facts, reason codes and review of each record; no personal "
                "application fields. Recorded in the access trail before the first byte.",
                "tags": ["audit"],
                "security": read,
                "parameters": [
                    query("format", {"enum": list(FORMATS), "default": "csv"}, "file format"),
                    *_filter_parameters(),
                    *_sort_parameters(),
                ],
                "responses": {
                    "200": {
                        "description": "The export file",
                        "content": {media: {} for media in FORMATS.values()},
                    },
                    **failures,
                },
            }
        },
        "/v1/audit/access-trail": {
            "get": {
                "summary": "Who read which decisions, when, with which query (newest first)",
                "tags": ["audit"],
                "security": [{"bearer": ["audit:read"]}],
                "parameters": [
                    query("since", {"type": "string", "format": "date-time"}, "at or after"),
                    query("until", {"type": "string", "format": "date-time"}, "before"),
                    query("actor", {"type": "string"}, "token subject or OS user"),
                    query("channel", {"enum": list(CHANNELS)}, "api, soap, cli or console"),
                    query("cursor", {"type": "string"}, "next_cursor of the previous page"),
                    query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size"),
                ],
                "responses": {
                    "200": json_content(
                        {
                            "type": "object",
                            "required": ["items", "next_cursor"],
                            "properties": {
                                "items": {"type": "array", "items": {"type": "object"}},
                                "next_cursor": {"type": ["string", "null"]},
                            },
                        },
                        "A page of the access trail",
                    ),
                    "400": problem("Bad query parameter"),
                    **AUTH_ERRORS,
                },
            }
        },
    }
