"""Operations: liveness, readiness and the plugin listing."""

from __future__ import annotations

from flask import Blueprint, Response

from gateway.auth import require_scopes
from gateway.http import json_response
from gateway.state import gateway_state

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness: the process answers."""
    return json_response({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Readiness: the database answers and every pipeline's model is loaded."""
    state = gateway_state()
    checks = {
        "database": state.extras["decision_log"].ping(),
        "models": all(p.ready() for p in state.extras["pipelines"].values()),
    }
    ready = all(checks.values())
    return json_response(
        {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
    )


@bp.get("/v1/plugins")
@require_scopes()
def plugins() -> Response:
    """Loaded plugins, their versions and the components each contributes."""
    return json_response({"plugins": gateway_state().extras["plugins"]})
