"""Decisions: make one (``decisions:create``), read and list them (``decisions:read``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, request

from gateway.api.access import audited
from gateway.api.audit import decision_query
from gateway.api.inputs import decision_id_or_404
from gateway.auth import current_principal, require_scopes
from gateway.decision_query import FILTERS, PAGING, SORTING, DecisionQuery
from gateway.errors import Problem, not_found
from gateway.http import answer_decision, json_response, problem_response, raw_json_response
from gateway.personal.views import documents_for_caller
from gateway.record import auditor_view
from gateway.state import gateway_state

bp = Blueprint("decisions", __name__)

JSON_TYPES = ("application/json",)


@bp.post("/v1/pipelines/<pipeline>/decisions")
@require_scopes("decisions:create")
def create_decision(pipeline: str) -> Response:
    """Decide one application through ``pipeline`` (REST adapter)."""
    service = gateway_state().extras["decisions"]
    service.pipeline(pipeline, "rest")  # unknown pipeline: 404 before reading the body
    mimetype = request.mimetype or ""
    if mimetype not in JSON_TYPES and not mimetype.endswith("+json"):
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "Send the application as application/json.",
        )
    result = service.decide(
        pipeline,
        "rest",
        request.get_data(cache=False),
        request.headers,
        current_principal().client_id,
        g.request_id,
    )
    return answer_decision(result, json_response)


@bp.get("/v1/decisions/<decision_id>")
@require_scopes("decisions:read")
@audited
def get_decision(decision_id: str) -> Response:
    """The full logged record of one decision, with its review and loan outcome beside it."""
    decision_id_or_404(decision_id)  # e.g. a NUL byte, which PostgreSQL refuses outright
    state = gateway_state()
    stored = state.extras["decision_log"].get(decision_id)
    if stored is None:
        raise not_found(f"No decision with id {decision_id!r}.")
    review = state.extras["reviews"].get(decision_id)
    outcome = state.extras["outcomes"].get(decision_id)
    linked = {
        "review": review.as_dict() if review else None,
        "loan_outcome": outcome.as_dict() if outcome else None,
    }
    g.trail_result_count = 1
    # Personal values: in clear with pii:read, masked without (gateway.personal.views).
    (shown,) = documents_for_caller([stored.document])
    return raw_json_response(auditor_view(shown, linked))


def parse_query(args: Any) -> DecisionQuery:
    """A :class:`DecisionQuery` of a page of records from query-string ``args``; a 400
    naming a bad parameter (one parser for every reader: :mod:`gateway.decision_query`)."""
    return decision_query(args, (*FILTERS, *SORTING, *PAGING))


@bp.get("/v1/decisions")
@require_scopes("decisions:read")
@audited
def list_decisions() -> Response:
    """Logged decisions, newest first (or as sorted), filtered, with cursor pagination."""
    query = parse_query(request.args)
    documents, next_cursor = gateway_state().extras["decision_log"].query(query)
    g.trail_params, g.trail_result_count = query.as_params(), len(documents)
    # Each shown as the caller may see it (personal values opened or masked), then spliced.
    body = b'{"items":[' + b",".join(documents_for_caller(documents)) + b'],"next_cursor":'
    body += (b'"' + next_cursor.encode() + b'"') if next_cursor else b"null"
    return raw_json_response(body + b"}")


@bp.get("/v1/pipelines")
@require_scopes()
def list_pipelines() -> Response:
    """The configured pipelines and their stages."""
    pipelines = gateway_state().extras["pipelines"]
    return json_response({"pipelines": [p.describe() for p in pipelines.values()]})


@bp.get("/v1/pipelines/<pipeline>")
@require_scopes()
def get_pipeline(pipeline: str) -> Response:
    """One pipeline, with the JSON Schema of the application it accepts."""
    found = gateway_state().extras["pipelines"].get(pipeline)
    if found is None:
        return problem_response(not_found(f"No pipeline named {pipeline!r}."))
    return json_response({**found.describe(), "input_schema": found.input_schema()})
