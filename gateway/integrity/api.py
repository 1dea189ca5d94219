"""Integrity routes (``decisions:read``): verify the log, export checkpoints, evidence."""

from __future__ import annotations

from flask import Blueprint, Response

from gateway.api.access import audited
from gateway.api.inputs import decision_id_or_404
from gateway.auth import require_scopes
from gateway.errors import Problem, not_found
from gateway.http import json_response
from gateway.integrity.background import settings
from gateway.integrity.evidence import NotSealed, build_bundle
from gateway.integrity.verify import verify
from gateway.state import gateway_state

bp = Blueprint("integrity", __name__)


@bp.get("/v1/integrity")
@require_scopes("decisions:read")
def verify_log() -> Response:
    """Verify the whole log now: ``ok``, counts, the chain head and the first problem.

    Read-only: rows not sealed yet are counted as ``pending``, never sealed here.
    """
    state = gateway_state()
    report = verify(state.engine, late_after=settings(state.config)["late_after_seconds"])
    return json_response(report.as_dict())


@bp.get("/v1/decisions/<decision_id>/evidence")
@require_scopes("decisions:read")
@audited
def evidence(decision_id: str) -> Response:
    """The self-contained evidence bundle of one decision (checked by ``verify --bundle``)."""
    decision_id_or_404(decision_id)
    state = gateway_state()
    try:
        bundle = build_bundle(state.engine, decision_id)
    except NotSealed:
        retry = max(1, round(settings(state.config)["seal_interval_seconds"]))
        raise Problem(
            409,
            "not-sealed-yet",
            "Decision not sealed yet",
            "The decision is logged but not yet in the tamper-evident chain; retry shortly.",
            headers={"Retry-After": str(retry)},
        ) from None
    if bundle is None:
        raise not_found(f"No decision with id {decision_id!r}.")
    return json_response(
        bundle,
        headers={"Content-Disposition": f'attachment; filename="evidence-{decision_id}.json"'},
    )
