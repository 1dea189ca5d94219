"""Human review: the queue and reviews (``decisions:review``), the override report
(``decisions:read``)."""

from __future__ import annotations

import unicodedata
from typing import Any

from flask import Blueprint, Response, g, request

from gateway.api.access import audited
from gateway.auth import current_principal, require_scopes
from gateway.errors import FieldError, validation_failed
from gateway.http import json_response, raw_json_response
from gateway.personal.views import documents_for_caller
from gateway.reviews import FINAL_OUTCOMES, MAX_JUSTIFICATION, ReviewLog
from gateway.state import gateway_state

from .inputs import decision_id_or_404, json_body, page_params, query_error

bp = Blueprint("reviews", __name__)

REVIEW_MEMBERS = ("final_outcome", "justification")
_ALLOWED_CONTROLS = {"\n", "\r", "\t"}


def review_log() -> ReviewLog:
    log: ReviewLog = gateway_state().extras["reviews"]
    return log


def parse_review(doc: Any) -> tuple[str, str]:
    """``(final_outcome, justification)`` from a review body; a 422 naming each bad member."""
    if not isinstance(doc, dict):
        raise validation_failed((FieldError("", "type", "the body must be a JSON object"),))
    errors = [
        FieldError(f"/{str(k)[:50]}", "unknown", "unknown member")
        for k in doc
        if k not in REVIEW_MEMBERS
    ]
    outcome = doc.get("final_outcome")
    if outcome is None:
        errors.append(FieldError("/final_outcome", "required", "is required"))
    elif outcome not in FINAL_OUTCOMES:
        errors.append(
            FieldError("/final_outcome", "enum", f"must be one of {list(FINAL_OUTCOMES)}")
        )
    text = doc.get("justification")
    if text is None:
        errors.append(FieldError("/justification", "required", "is required"))
    elif not isinstance(text, str):
        errors.append(FieldError("/justification", "type", "must be a string"))
    else:
        text = text.strip()
        if not text:
            errors.append(FieldError("/justification", "required", "must not be empty"))
        elif len(text) > MAX_JUSTIFICATION:
            detail = f"must be at most {MAX_JUSTIFICATION} characters"
            errors.append(FieldError("/justification", "maxLength", detail))
        elif any(
            unicodedata.category(c) == "Cc" and c not in _ALLOWED_CONTROLS for c in text
        ):  # NUL and friends: PostgreSQL refuses NUL, and no reader wants the others
            errors.append(FieldError("/justification", "characters", "holds control characters"))
    if errors:
        raise validation_failed(tuple(errors))
    return str(outcome), str(text)


@bp.post("/v1/decisions/<decision_id>/review")
@require_scopes("decisions:review")
def review_decision(decision_id: str) -> Response:
    """Record a reviewer's final outcome for a referred decision."""
    decision_id_or_404(decision_id)
    outcome, justification = parse_review(json_body())
    record = review_log().submit(decision_id, current_principal().client_id, outcome, justification)
    headers = {"Location": f"/v1/decisions/{decision_id}"}
    return json_response(record.as_dict(), 201, headers)


@bp.get("/v1/reviews")
@require_scopes("decisions:review")
@audited  # the queue holds whole decisions
def review_queue() -> Response:
    """Referred decisions awaiting review (oldest first), or reviewed ones (``status=done``)."""
    params = page_params(request.args, {"status"})
    status = request.args.get("status", "pending")
    if status not in ("pending", "done"):
        raise query_error("status", "must be 'pending' or 'done'")
    items, next_cursor = review_log().queue(
        status == "done", params["cursor"], params["limit"], show=documents_for_caller
    )
    g.trail_result_count = len(items)
    body = b'{"items":[' + b",".join(items) + b'],"next_cursor":'
    body += (b'"' + next_cursor.encode() + b'"') if next_cursor else b"null"
    return raw_json_response(body + b"}")


@bp.get("/v1/reviews/report")
@require_scopes("decisions:read")
@audited
def review_report() -> Response:
    """Override rates per reason code."""
    for name in request.args:
        raise query_error(name, "this route takes no parameters")
    return json_response(review_log().report())
