"""Models and their stages, the log's integrity, and the loaded plugins and pipelines."""

from __future__ import annotations

import re
from typing import Any

from flask import (
    abort,
    g,
    redirect,
    render_template,
    request,
    url_for,
)

from gateway.api.models import change_stage, describe, registry, roll_back
from gateway.console.blueprint import bp, page, with_query
from gateway.errors import Problem
from gateway.integrity.background import settings as integrity_settings
from gateway.integrity.sealer import head
from gateway.integrity.verify import verify
from gateway.registry import STAGES
from gateway.state import gateway_state


@bp.get("/models")
@page("decisions:read")
def models() -> Any:
    """Registered model versions: stage, metrics, provenance; stage changes for admins."""
    infos = registry().list(None)
    g.trail_result_count = len(infos)
    return render_template(
        "console/models.html",
        versions=[describe(i) for i in infos],
        history={name: registry().history(name) for name in sorted({i.name for i in infos})},
        stages=STAGES,
        done=request.args.get("done"),
    )


@bp.post("/models/<name>/versions/<int:version>/stage")
@page("models:admin")
def model_stage(name: str, version: int) -> Any:
    """Move a version to a stage, after a confirmation page (``confirm=yes``)."""
    stage, reason = request.form.get("stage", ""), request.form.get("reason", "").strip()
    if stage not in STAGES:
        abort(400, "stage: one of " + ", ".join(STAGES))
    if request.form.get("confirm") != "yes":
        what = f"Move {name} version {version} to {stage}?"
        return render_template("console/confirm.html", what=what, form=dict(request.form))
    try:
        change_stage(name, version, stage, g.console.actor, reason or None)
    except Problem as problem:
        abort(problem.status, problem.detail)
    g.trail_params = {"name": name, "version": version, "stage": stage}
    return redirect(with_query(url_for(".models"), {"done": f"{name} v{version}: {stage}"}))


@bp.post("/models/<name>/rollback")
@page("models:admin")
def model_rollback(name: str) -> Any:
    """Make the previous champion the champion again, after a confirmation page."""
    if request.form.get("confirm") != "yes":
        what = f"Make the previous champion of {name} the champion again?"
        return render_template("console/confirm.html", what=what, form=dict(request.form))
    try:
        changed = roll_back(name, g.console.actor)
    except Problem as problem:
        abort(problem.status, problem.detail)
    g.trail_params = {"name": name, "rollback": True}
    done = f"{name} v{changed.version}: champion again"
    return redirect(with_query(url_for(".models"), {"done": done}))


@bp.get("/integrity")
@page("decisions:read")
def integrity() -> Any:
    """The log's tamper evidence: verify status and the last checkpoint; verify on demand."""
    state = gateway_state()
    report = None
    if request.args.get("verify"):
        late = integrity_settings(state.config)["late_after_seconds"]
        report = verify(state.engine, late_after=late).as_dict()
    with state.engine.connect() as conn:
        last = head(conn)
    return render_template(
        "console/integrity.html", report=report, last=last.as_dict() if last else None
    )


@bp.get("/plugins")
@page("decisions:read")
def plugins() -> Any:
    """What is loaded, and how each pipeline is configured (secrets masked)."""
    state = gateway_state()
    pipelines = [masked(p.describe()) for p in state.extras["pipelines"].values()]
    return render_template(
        "console/plugins.html", plugins=state.extras["plugins"], pipelines=pipelines
    )


#: A configuration key ending in one of these words (or holding "password" or "secret")
#: has its value hidden; a key ending ``_env`` names a variable, which is shown.
SECRET_WORDS = frozenset({"password", "secret", "token", "key", "credentials", "authorization"})


def _secret_key(key: str) -> bool:
    parts = [p for p in re.split(r"[^a-z0-9]+", key.lower()) if p]
    if not parts or parts[-1] == "env":
        return False
    return parts[-1] in SECRET_WORDS or any("password" in p or "secret" in p for p in parts)


def masked(value: Any, key: str = "") -> Any:
    """``value`` with every secret-looking member replaced by ``"••••"``, recursively."""
    if _secret_key(key):
        return "••••" if value not in (None, "", [], {}) else value
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value
