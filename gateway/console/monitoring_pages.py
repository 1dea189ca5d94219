"""Monitoring in the console: drift over time, the score's distribution, performance and
calibration, fairness ratios and alert history, each as a chart with its figures beside it.

The figures are the stored runs of ``loangate monitor run`` (:mod:`gateway.monitoring.runs`):
aggregates only, so the page needs ``monitoring:read``, not ``decisions:read``.
"""

from __future__ import annotations

from typing import Any

from flask import g, render_template
from markupsafe import Markup

from gateway.console.blueprint import bp, page
from gateway.console.charts import paired_bars
from gateway.monitoring import runs
from gateway.monitoring.report import drift_chart
from gateway.state import gateway_state


def score_distribution(run: dict[str, Any]) -> Any:
    """The score's reference and window shares per decile of a drift run, as paired bars."""
    score = run["results"].get("score") or {}
    ref, win = score.get("reference_shares") or [], score.get("window_shares") or []
    if not ref or len(ref) != len(win):
        return None
    return paired_bars([f"D{i + 1}" for i in range(len(ref))], ref, win)


def calibration(run: dict[str, Any]) -> Any:
    """Mean predicted probability against observed default rate per score band."""
    bands = [b for b in run["results"].get("bands") or () if b.get("count")]
    if not bands:
        return None
    labels = [f"B{b['band'] + 1}" for b in bands]
    return paired_bars(
        labels, [b["mean_probability"] for b in bands], [b["bad_rate"] for b in bands]
    )


@bp.get("/monitoring")
@page("monitoring:read")
def monitoring() -> Any:
    """The latest run of each kind per pipeline and model version, and drift over time."""
    state = gateway_state()
    engine = state.engine
    psi = state.extras["monitor"].settings["drift"].get("psi") or {}
    history = runs.history(engine, "drift", limit=60)
    latest = {kind: runs.latest(engine, kind) for kind in runs.KINDS}
    alerts = [
        r for kind in runs.KINDS for r in runs.history(engine, kind, limit=100) if r["alerts"]
    ]
    alerts.sort(key=lambda r: r["started_at"], reverse=True)
    g.trail_result_count = sum(len(v) for v in latest.values())
    return render_template(
        "console/monitoring.html",
        # drift_chart escapes every name it draws and holds no script or style attribute
        drift_svg=Markup(drift_chart(history, psi.get("alert"), psi.get("warn"))),
        history=history,
        latest=latest,
        distributions={r["id"]: score_distribution(r) for r in latest["drift"]},
        calibrations={r["id"]: calibration(r) for r in latest["performance"]},
        alerts=alerts[:50],
    )
