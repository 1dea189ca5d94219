"""Monitoring results over HTTP: ``GET /v1/monitoring/{drift,performance,fairness}``.

Each answers the latest stored run per pipeline and model version (``pipeline=``
narrows), or one run by id (``run=``). Runs are made by ``loangate monitor run``; these
routes only read. They need the ``monitoring:read`` scope: the results are aggregates
(counts, shares, statistics, approval rates per group), never a decision or a personal
value, so a dashboard or an alerting system can read them without ``decisions:read``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from gateway import ids
from gateway.api.inputs import query_error
from gateway.api.spec import AUTH_ERRORS, json_content, problem, query
from gateway.auth import require_scopes
from gateway.errors import not_found
from gateway.http import json_response
from gateway.monitoring import runs
from gateway.state import gateway_state

SCOPE = "monitoring:read"

bp = Blueprint("monitoring", __name__)


def _answer(kind: str) -> Response:
    for key in request.args:
        if key not in ("pipeline", "run"):
            raise query_error(key, "unknown parameter")
    engine = gateway_state().engine
    run_id = request.args.get("run")
    if run_id is not None:
        if not ids.is_valid(run_id):
            raise query_error("run", "not a run id")
        found = runs.get(engine, run_id)
        if found is None or found["kind"] != kind:
            raise not_found(f"No {kind} run {run_id!r}.")
        return json_response(found)
    pipeline = request.args.get("pipeline")
    if pipeline is not None and not 0 < len(pipeline) <= 100:
        raise query_error("pipeline", "1 to 100 characters")
    return json_response({"items": runs.latest(engine, kind, pipeline)})


@bp.get("/v1/monitoring/drift")
@require_scopes(SCOPE)
def drift() -> Response:
    """The latest drift run per pipeline and model version, or one (``run=``)."""
    return _answer("drift")


@bp.get("/v1/monitoring/performance")
@require_scopes(SCOPE)
def performance() -> Response:
    """The latest performance run per pipeline and model version, or one (``run=``)."""
    return _answer("performance")


@bp.get("/v1/monitoring/fairness")
@require_scopes(SCOPE)
def fairness() -> Response:
    """The latest fairness run per pipeline and model version, or one (``run=``)."""
    return _answer("fairness")


def openapi_paths() -> dict[str, Any]:
    """The OpenAPI description of these routes (merged by :mod:`gateway.api.openapi`)."""
    run_schema = {
        "type": "object",
        "required": ["id", "kind", "pipeline", "model", "version", "window", "results"],
        "properties": {
            "id": {"type": "string"},
            "kind": {"enum": list(runs.KINDS)},
            "pipeline": {"type": "string"},
            "model": {"type": "string"},
            "version": {"type": "integer"},
            "window": {
                "type": "object",
                "description": "last N decisions and/or [since, until); rows it held",
            },
            "started_at": {"type": "string", "format": "date-time"},
            "finished_at": {"type": "string", "format": "date-time"},
            "alerts": {"type": "integer", "description": "alerts the run sent"},
            "results": {"type": "object", "description": "figures per feature, model or group"},
        },
    }
    listing = {
        "oneOf": [
            {"type": "object", "properties": {"items": {"type": "array", "items": run_schema}}},
            run_schema,
        ]
    }
    out: dict[str, Any] = {}
    for kind, what in (
        ("drift", "Drift of each feature and of the score against the training profile"),
        ("performance", "AUC, KS, Brier, bad rate and calibration on known outcomes"),
        ("fairness", "Approval rates across protected groups (four-fifths rule)"),
    ):
        out[f"/v1/monitoring/{kind}"] = {
            "get": {
                "tags": ["monitoring"],
                "security": [{"bearer": [SCOPE]}],
                "summary": what,
                "parameters": [
                    query("pipeline", {"type": "string"}, "only this pipeline"),
                    query("run", {"type": "string"}, "one run by id (else the latest ones)"),
                ],
                "responses": {
                    "200": json_content(listing, "The latest runs ({items}), or the run asked for"),
                    "400": problem("Unknown or malformed parameter"),
                    **AUTH_ERRORS,
                    "404": problem("No such run of this kind"),
                },
            }
        }
    return out
