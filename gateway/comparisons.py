"""What the models are worth: shadow comparisons and business impact, in SQL.

*Shadow comparison*: per shadow model (label and version), how its scores and the
outcomes the policy would have given compare with the champion's on the same requests.

*Business impact*: per model version and policy version, the approval rate and the bad
rate among approved loans whose outcome is known, and the same for each baseline run
in shadow (a challenger, or the traditional scorecard), so a risk officer sees whether
the model still beats what came before. A decision's final outcome is the reviewer's
when it was reviewed. A baseline's bad rate can only be measured on the loans that were
granted (those the champion approved): it is reported as ``bad_rate_on_shared_approvals``
with the count it rests on, beside the champion's on the same loans.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, case, func, select

from gateway.shadow import shadow_scores
from gateway.tables import Decision, LoanOutcome, Review

_APPROVE = "approve"


def _rate(part: Any, whole: Any) -> float | None:
    return None if not whole else float(part) / float(whole)


def shadow_comparison(
    engine: Engine,
    pipeline: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """One entry per (pipeline, shadow label, model version) over the window."""
    s = shadow_scores.c
    conditions = [c for c in _window(s.pipeline, s.received_at, pipeline, since, until)]
    agree = func.sum(case((s.outcome == s.champion_outcome, 1), else_=0))
    stmt = (
        select(
            s.pipeline,
            s.label,
            s.model_name,
            s.model_version,
            func.count().label("n"),
            func.avg(s.probability).label("mean_probability"),
            func.avg(s.champion_probability).label("champion_mean_probability"),
            func.avg(func.abs(s.probability - s.champion_probability)).label("mean_abs_diff"),
            agree.label("agree"),
            func.sum(case((s.outcome == _APPROVE, 1), else_=0)).label("approved"),
            func.sum(case((s.champion_outcome == _APPROVE, 1), else_=0)).label("champ_approved"),
        )
        .where(*conditions)
        .group_by(s.pipeline, s.label, s.model_name, s.model_version)
        .order_by(s.pipeline, s.label, s.model_version)
    )
    matrix_stmt = (
        select(s.pipeline, s.label, s.model_version, s.champion_outcome, s.outcome, func.count())
        .where(*conditions)
        .group_by(s.pipeline, s.label, s.model_version, s.champion_outcome, s.outcome)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
        cells = conn.execute(matrix_stmt).all()
    matrices: dict[tuple[str, str, int], dict[str, dict[str, int]]] = {}
    for pipe, label, version, champ, shadow, n in cells:
        matrices.setdefault((pipe, label, version), {}).setdefault(champ, {})[shadow] = int(n)
    return [
        {
            "pipeline": r.pipeline,
            "label": r.label,
            "model": {"name": r.model_name, "version": r.model_version},
            "decisions": int(r.n),
            "mean_probability": float(r.mean_probability),
            "champion_mean_probability": float(r.champion_mean_probability),
            "mean_abs_difference": float(r.mean_abs_diff),
            "outcome_agreement": _rate(r.agree, r.n),
            "approval_rate": _rate(r.approved, r.n),
            "champion_approval_rate": _rate(r.champ_approved, r.n),
            # champion outcome -> shadow outcome -> count
            "outcomes": matrices.get((r.pipeline, r.label, r.model_version), {}),
        }
        for r in rows
    ]


def business_impact(
    engine: Engine,
    pipeline: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Approval and bad rates per model and policy version, and per shadow baseline."""
    d, r, o, s = Decision.__table__.c, Review.__table__.c, LoanOutcome.__table__.c, shadow_scores.c
    final = func.coalesce(r.final_outcome, d.outcome)
    approved = case((final == _APPROVE, 1), else_=0)
    known = case((and_(final == _APPROVE, o.status.is_not(None)), 1), else_=0)
    bad = case((and_(final == _APPROVE, o.status == "defaulted"), 1), else_=0)
    joined = Decision.__table__.outerjoin(Review.__table__, r.decision_id == d.id).outerjoin(
        LoanOutcome.__table__, o.decision_id == d.id
    )
    conditions = [d.status_code == 201, *_window(d.pipeline, d.received_at, pipeline, since, until)]
    models_stmt = (
        select(
            d.pipeline,
            d.model_name,
            d.model_version,
            d.policy_version,
            func.count().label("n"),
            func.sum(approved).label("approved"),
            func.sum(known).label("known"),
            func.sum(bad).label("bad"),
        )
        .select_from(joined)
        .where(*conditions)
        .group_by(d.pipeline, d.model_name, d.model_version, d.policy_version)
        .order_by(d.pipeline, d.model_name, d.model_version, d.policy_version)
    )
    # Baselines: on the same requests, what the shadow would have approved, and how the
    # loans it shares with the champion (granted, so with outcomes) turned out.
    shared = and_(s.outcome == _APPROVE, final == _APPROVE, o.status.is_not(None))
    baseline_stmt = (
        select(
            s.pipeline,
            s.label,
            s.model_name,
            s.model_version,
            func.count().label("n"),
            func.sum(case((s.outcome == _APPROVE, 1), else_=0)).label("approved"),
            func.sum(case((shared, 1), else_=0)).label("shared_known"),
            func.sum(case((and_(shared, o.status == "defaulted"), 1), else_=0)).label("bad"),
            func.sum(case((and_(final == _APPROVE, o.status.is_not(None)), 1), else_=0)).label(
                "champ_known"
            ),
            func.sum(case((and_(final == _APPROVE, o.status == "defaulted"), 1), else_=0)).label(
                "champ_bad"
            ),
        )
        .select_from(joined.join(shadow_scores, s.decision_id == d.id))
        .where(*conditions)
        .group_by(s.pipeline, s.label, s.model_name, s.model_version)
        .order_by(s.pipeline, s.label, s.model_version)
    )
    with engine.connect() as conn:
        models = conn.execute(models_stmt).all()
        baselines = conn.execute(baseline_stmt).all()
    return {
        "models": [
            {
                "pipeline": m.pipeline,
                "model": {"name": m.model_name, "version": m.model_version},
                "policy_version": m.policy_version,
                "decisions": int(m.n),
                "approval_rate": _rate(m.approved, m.n),
                "approved_with_outcome": int(m.known or 0),
                "bad_rate_among_approved": _rate(m.bad or 0, m.known),
            }
            for m in models
        ],
        "baselines": [
            {
                "pipeline": b.pipeline,
                "label": b.label,
                "model": {"name": b.model_name, "version": b.model_version},
                "decisions": int(b.n),
                "approval_rate": _rate(b.approved, b.n),
                "shared_approvals_with_outcome": int(b.shared_known or 0),
                "bad_rate_on_shared_approvals": _rate(b.bad or 0, b.shared_known),
                "champion_bad_rate_same_window": _rate(b.champ_bad or 0, b.champ_known),
            }
            for b in baselines
        ],
    }


def _window(
    pipeline_col: Any,
    time_col: Any,
    pipeline: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[Any]:
    conditions = []
    if pipeline is not None:
        conditions.append(pipeline_col == pipeline)
    if since is not None:
        conditions.append(time_col >= since)
    if until is not None:
        conditions.append(time_col < until)
    return conditions
