"""Decisions: make one (``decisions:create``), read and list them (``decisions:read``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, g, request

from gateway.api.inputs import decision_id_or_404
from gateway.auth import current_principal, require_scopes
from gateway.decision_log import DecisionQuery, decode_cursor
from gateway.errors import FieldError, Problem, bad_request, not_found
from gateway.http import answer_decision, json_response, problem_response, raw_json_response
from gateway.record import auditor_view
from gateway.state import gateway_state

bp = Blueprint("decisions", __name__)

MAX_LIMIT = 500
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
    return raw_json_response(auditor_view(stored.document, linked))


_QUERY_PARAMS = {
    "since",
    "until",
    "pipeline",
    "outcome",
    "model_name",
    "model_version",
    "client_id",
    "application_id",
    "reviewed",
    "cursor",
    "limit",
}
OUTCOMES = {"approve", "refer", "decline", "rejected", "error"}


def _param_error(name: str, detail: str) -> Problem:
    return bad_request(
        f"Invalid query parameter {name!r}: {detail}",
        (FieldError(f"/query/{name}", "invalid", detail),),
    )


def parse_query(args: Any) -> DecisionQuery:
    """A :class:`DecisionQuery` from query-string ``args``; a 400 naming a bad parameter."""
    for name in args:
        if name not in _QUERY_PARAMS:
            raise _param_error(
                name, "unknown parameter; allowed: " + ", ".join(sorted(_QUERY_PARAMS))
            )
    values: dict[str, Any] = {}
    for name in ("since", "until"):
        if name in args:
            try:
                stamp = datetime.fromisoformat(args[name].replace("Z", "+00:00"))
            except ValueError:
                raise _param_error(name, "must be an ISO 8601 date-time") from None
            if stamp.tzinfo is None:
                raise _param_error(name, "must carry a time zone (e.g. Z)")
            values[name] = stamp
    for name in ("pipeline", "model_name", "client_id", "application_id"):
        if name in args:
            if not 0 < len(args[name]) <= 200:
                raise _param_error(name, "must be 1 to 200 characters")
            values[name] = args[name]
    if "reviewed" in args:
        if args["reviewed"] not in ("true", "false"):
            raise _param_error("reviewed", "must be true or false")
        values["reviewed"] = args["reviewed"] == "true"
    if "outcome" in args:
        if args["outcome"] not in OUTCOMES:
            raise _param_error("outcome", f"must be one of {sorted(OUTCOMES)}")
        values["outcome"] = args["outcome"]
    for name, low, high in (("model_version", 1, 2**31 - 1), ("limit", 1, MAX_LIMIT)):
        if name in args:
            try:
                number = int(args[name])
            except ValueError:
                raise _param_error(name, "must be an integer") from None
            if not low <= number <= high:
                raise _param_error(name, f"must be between {low} and {high}")
            values[name] = number
    if "cursor" in args:
        try:
            decode_cursor(args["cursor"])
        except ValueError:
            raise _param_error("cursor", "not a cursor returned by this API") from None
        values["cursor"] = args["cursor"]
    return DecisionQuery(**values)


@bp.get("/v1/decisions")
@require_scopes("decisions:read")
def list_decisions() -> Response:
    """Logged decisions, newest first, filtered, with cursor pagination."""
    query = parse_query(request.args)
    documents, next_cursor = gateway_state().extras["decision_log"].query(query)
    # The stored documents are already JSON: splice them instead of re-serialising.
    body = b'{"items":[' + b",".join(documents) + b'],"next_cursor":'
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
