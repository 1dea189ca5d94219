"""The review queue: referred decisions, taken by one reviewer at a time
(:mod:`gateway.review_claims`), and a reviewer's final outcome."""

from __future__ import annotations

from typing import Any

import orjson
from flask import (
    abort,
    g,
    redirect,
    render_template,
    request,
    url_for,
)

from gateway import ids
from gateway.api.reviews import parse_review, review_log
from gateway.console.blueprint import PAGE_SIZE, bp, page, with_query
from gateway.errors import Problem
from gateway.personal.views import documents_for_caller
from gateway.review_claims import ReviewClaims
from gateway.reviews import FINAL_OUTCOMES
from gateway.state import gateway_state


def review_claims() -> ReviewClaims:
    """The gateway's :class:`ReviewClaims`."""
    found: ReviewClaims = gateway_state().extras["review_claims"]
    return found


@bp.get("/reviews")
@page("decisions:review")
def reviews() -> Any:
    """The review queue: referred decisions awaiting a reviewer, oldest first."""
    cursor = request.args.get("cursor") or None
    try:
        items, next_cursor = review_log().queue(False, cursor, PAGE_SIZE, documents_for_caller)
    except ValueError:
        abort(400, "cursor: not a cursor of this queue")
    queue = [orjson.loads(item)["decision"] for item in items]
    holders = review_claims().holders(d["decision_id"] for d in queue)
    g.trail_result_count = len(queue)
    next_url = with_query(url_for(".reviews"), {"cursor": next_cursor}) if next_cursor else None
    return render_template(
        "console/reviews.html",
        queue=queue,
        next_url=next_url,
        holders=holders,
        outcomes=FINAL_OUTCOMES,
        done=request.args.get("done"),
        taken=request.args.get("taken"),
        held=request.args.get("held"),
    )


@bp.post("/decisions/<decision_id>/take")
@page("decisions:review")
def take(decision_id: str) -> Any:
    """Take a referral to work it: no one else can record its review while the claim lives."""
    if not ids.is_valid(decision_id):
        abort(404, "No such decision.")
    stored = gateway_state().extras["decision_log"].get(decision_id)
    if stored is None:
        abort(404, "No such decision.")
    if stored.parsed().get("outcome") != "refer" or review_log().get(decision_id):
        abort(409, "Only a referral still awaiting its review can be taken.")
    holder = review_claims().take(decision_id, g.console.actor)
    g.trail_params = {"decision_id": decision_id, "holder": holder.reviewer}
    if holder.reviewer != g.console.actor:
        return redirect(with_query(url_for(".reviews"), {"held": decision_id}))
    return redirect(with_query(url_for(".reviews"), {"taken": decision_id}) + f"#ref-{decision_id}")


@bp.post("/decisions/<decision_id>/review")
@page("decisions:review")
def review(decision_id: str) -> Any:
    """Decide a referral: a final outcome and a justification, both required."""
    if not ids.is_valid(decision_id):
        abort(404, "No such decision.")
    holder = review_claims().holders([decision_id]).get(decision_id)
    if holder is not None and holder.reviewer != g.console.actor:
        abort(
            409,
            f"{holder.reviewer} is reviewing this referral "
            f"(taken at {holder.claimed_at:%H:%M} UTC).",
        )
    form = {k: request.form.get(k, "") for k in ("final_outcome", "justification")}
    try:
        outcome, justification = parse_review(form)
        review_log().submit(decision_id, g.console.actor, outcome, justification)
    except Problem as problem:
        reasons = "; ".join(f"{e.pointer.lstrip('/')}: {e.detail}" for e in problem.errors)
        abort(problem.status if problem.status < 500 else 400, reasons or problem.detail)
    review_claims().release(decision_id, g.console.actor)
    g.trail_params = {"decision_id": decision_id, "final_outcome": outcome}
    return redirect(with_query(url_for(".reviews"), {"done": decision_id}))
