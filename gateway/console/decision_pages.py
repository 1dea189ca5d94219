"""The decisions search, a decision's page and its actions (replay, evidence, notice)."""

from __future__ import annotations

from typing import Any

import orjson
from flask import (
    Response,
    abort,
    g,
    render_template,
    request,
    url_for,
)

from gateway import ids
from gateway.api import notices as notices_api
from gateway.console.blueprint import PAGE_SIZE, bp, page, through_api, with_query
from gateway.console.charts import waterfall
from gateway.decision_export import FORMATS, export_chunks
from gateway.decision_query import (
    FILTERS,
    OUTCOMES,
    PAGING,
    SORTING,
    SORTS,
    DecisionQuery,
    QueryError,
    parse_query,
)
from gateway.integrity import api as integrity_api
from gateway.personal.views import documents_for_caller
from gateway.replay import api as replay_api
from gateway.state import gateway_state


def _filters() -> dict[str, str]:
    """The query string without empty fields (a form sends every field, filled or not)."""
    return {k: v for k, v in request.args.items() if v.strip()}


def _query(allowed: tuple[str, ...]) -> tuple[DecisionQuery | None, str | None]:
    try:
        return parse_query(_filters(), allowed), None
    except QueryError as exc:
        return None, f"{exc.name}: {exc.detail}"


@bp.get("/decisions")
@page("decisions:read")
def decisions() -> Any:
    """Search the decision log with every filter of the API, sorted and paged."""
    args = _filters()
    args.setdefault("limit", str(PAGE_SIZE))
    query, error = None, None
    try:
        query = parse_query(args, (*FILTERS, *SORTING, *PAGING))
    except QueryError as exc:
        error = f"{exc.name}: {exc.detail}"
    items: list[dict[str, Any]] = []
    next_url = None
    if query is not None:
        documents, cursor = gateway_state().extras["decision_log"].query(query)
        items = [orjson.loads(d) for d in documents_for_caller(documents)]
        g.trail_params, g.trail_result_count = query.as_params(), len(items)
        if cursor:
            next_url = with_query(url_for(".decisions"), {**args, "cursor": cursor})
    keep = {k: v for k, v in args.items() if k not in PAGING}
    body = render_template(
        "console/decisions.html",
        items=items,
        error=error,
        args=keep,
        next_url=next_url,
        sort_links={key: sort_link(keep, key) for key in ("id", "probability")},
        outcome_options=[("", "any"), *((o, o) for o in OUTCOMES)],
        sort_options=[("", "time received"), *((s, s.replace("_", " ")) for s in SORTS[1:])],
        order_options=[("", "newest or highest first"), ("asc", "oldest or lowest first")],
        export_csv=with_query(url_for(".export"), {**keep, "format": "csv"}),
        export_parquet=with_query(url_for(".export"), {**keep, "format": "parquet"}),
    )
    return (body, 400) if error else body


def sort_link(args: dict[str, str], key: str) -> tuple[str, str | None]:
    """(URL, ``aria-sort`` value) of a column header: sorting by ``key``, newest or highest
    first, or the other way when the page is already sorted by it that way."""
    current = args.get("sort", "id") if args.get("sort") != "received_at" else "id"
    descending = args.get("order", "desc") != "asc"
    state = None
    if current == key:
        state = "descending" if descending else "ascending"
    order = "asc" if current == key and descending else "desc"
    sorted_args = {k: v for k, v in args.items() if k not in ("sort", "order")}
    if key != "id":
        sorted_args["sort"] = key
    if order == "asc":
        sorted_args["order"] = "asc"
    return with_query(url_for(".decisions"), sorted_args), state


@bp.get("/decisions/export")
@page("decisions:read")
def export() -> Any:
    """The matching records as a streamed CSV or Parquet file, as the API's export."""
    query, error = _query((*FILTERS, *SORTING, "format"))
    fmt = request.args.get("format", "csv")
    if error or query is None or fmt not in FORMATS:
        abort(400, error or "format: one of " + ", ".join(FORMATS))
    g.trail_params = {**query.as_params(), "format": fmt}
    return Response(
        export_chunks(gateway_state().engine, query, fmt),
        mimetype=FORMATS[fmt],
        headers={"Content-Disposition": f'attachment; filename="decisions.{fmt}"'},
    )


@bp.get("/decisions/<decision_id>")
@page("decisions:read")
def decision(decision_id: str) -> Any:
    """One decision: the application, how it was validated and enriched, the model, the
    contributions as a waterfall, reason codes, policy, timings, review and loan outcome."""
    if not ids.is_valid(decision_id):
        abort(404, "No such decision.")
    state = gateway_state()
    stored = state.extras["decision_log"].get(decision_id)
    if stored is None:
        abort(404, "No such decision.")
    (shown,) = documents_for_caller([stored.document])
    doc = orjson.loads(shown)
    review = state.extras["reviews"].get(decision_id)
    outcome = state.extras["outcomes"].get(decision_id)
    explanation = doc.get("explanation")
    chart = None
    if explanation and explanation.get("contributions"):
        chart = waterfall(
            explanation["base_value"], explanation["contributions"], explanation["output"]
        )
    g.trail_result_count = 1
    imputed = {i.get("field") for i in doc.get("imputations") or ()}
    return render_template(
        "console/decision.html",
        d=doc,
        chart=chart,
        imputed=imputed,
        review=review.as_dict() if review else None,
        loan_outcome=outcome.as_dict() if outcome else None,
    )


@bp.get("/decisions/<decision_id>/evidence")
def evidence(decision_id: str) -> Any:
    """The decision's evidence bundle (JSON), as ``GET /v1/decisions/{id}/evidence``."""
    return through_api(integrity_api.evidence, "decisions:read", decision_id)


@bp.get("/decisions/<decision_id>/notice")
def notice(decision_id: str) -> Any:
    """The adverse-action notice (HTML; ``?format=pdf`` for the PDF)."""
    return through_api(notices_api.decision_notice, "decisions:read", decision_id)


@bp.post("/decisions/<decision_id>/replay")
def replay(decision_id: str) -> Any:
    """Re-run the decision with its logged model and policy: reproduced, or how it differs."""
    answer = through_api(replay_api.replay_decision, "decisions:read", decision_id)
    report = orjson.loads(answer.get_data())
    return render_template("console/replay.html", report=report)
