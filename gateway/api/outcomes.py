"""Loan outcomes (``outcomes:write``): one decision's, or a batch as JSON or CSV."""

from __future__ import annotations

from flask import Blueprint, Response, request

from gateway.auth import current_principal, require_scopes
from gateway.errors import FieldError, Problem, not_found, validation_failed
from gateway.http import json_response
from gateway.outcomes import (
    FIELDS,
    OutcomeLog,
    batch_problem,
    parse_csv_rows,
    parse_json_rows,
    parse_row,
)
from gateway.reviews import conflict
from gateway.state import gateway_state

from .inputs import decision_id_or_404, is_json, json_body, unsupported_media_type

bp = Blueprint("outcomes", __name__)

#: Status of a refused single outcome, by row-error code.
_STATUS = {"not-found": 404, "not-granted": 409, "conflict": 409}


def outcome_log() -> OutcomeLog:
    log: OutcomeLog = gateway_state().extras["outcomes"]
    return log


@bp.post("/v1/decisions/<decision_id>/outcome")
@require_scopes("outcomes:write")
def record_outcome(decision_id: str) -> Response:
    """Record how the loan of one decision turned out: 201, or 200 if already recorded."""
    decision_id_or_404(decision_id)
    doc = json_body()
    if not isinstance(doc, dict):
        raise validation_failed((FieldError("", "type", "the body must be a JSON object"),))
    if "decision_id" in doc:  # the path names the decision; a second name could disagree
        raise validation_failed(
            (FieldError("/decision_id", "unknown", "unknown member (the path names it)"),)
        )
    parsed = parse_row({**doc, "decision_id": decision_id}, 0)
    if isinstance(parsed, list):
        if any(e.field == "decision_id" for e in parsed):
            raise not_found(f"No decision with id {decision_id!r}.")
        raise validation_failed(tuple(FieldError(f"/{e.field}", e.code, e.detail) for e in parsed))
    log = outcome_log()
    result = log.record([parsed], current_principal().client_id)
    if isinstance(result, list):
        error = result[0]
        status = _STATUS.get(error.code)
        if status == 404:
            raise not_found(f"No decision with id {decision_id!r}.")
        if status == 409:
            raise conflict(f"Decision {decision_id}: {error.detail}.")
        raise validation_failed((FieldError(f"/{error.field}", error.code, error.detail),))
    stored = log.get(decision_id)
    assert stored is not None
    headers = {"Location": f"/v1/decisions/{decision_id}"}
    return json_response(stored.as_dict(), 201 if result.created else 200, headers)


@bp.post("/v1/outcomes")
@require_scopes("outcomes:write")
def upload_outcomes() -> Response:
    """Record many outcomes at once, all or nothing (JSON list or ``text/csv``)."""
    if request.mimetype == "text/csv":
        rows, errors = parse_csv_rows(request.get_data(cache=False))
    elif is_json():
        rows, errors = parse_json_rows(json_body())
    else:
        raise unsupported_media_type(
            f"a JSON list (application/json) or CSV (text/csv) with columns {','.join(FIELDS)}"
        )
    if not rows and not errors:
        raise Problem(422, "no-rows", "No rows", "The batch holds no rows.")
    if errors:
        raise batch_problem(errors)
    result = outcome_log().record(rows, current_principal().client_id)
    if isinstance(result, list):
        raise batch_problem(result)
    return json_response(
        {"rows": len(rows), "recorded": result.created, "unchanged": result.unchanged}
    )
