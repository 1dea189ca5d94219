"""The adverse-action notice of a decision, as HTML or PDF (``decisions:read``)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from gateway.api.access import audited
from gateway.auth import require_scopes
from gateway.errors import not_found
from gateway.notices import NoticeRenderer, notice_for
from gateway.reviews import ReviewLog
from gateway.state import gateway_state

from .inputs import decision_id_or_404, query_error

bp = Blueprint("notices", __name__)

FORMATS = {"html": "text/html", "pdf": "application/pdf"}


def _format() -> str:
    """``?format=`` if given, else the best of ``Accept`` (HTML by default)."""
    for name in request.args:
        if name != "format":
            raise query_error(name, "unknown parameter; allowed: format")
    if "format" in request.args:
        wanted = request.args["format"]
        if wanted not in FORMATS:
            raise query_error("format", f"must be one of {sorted(FORMATS)}")
        return wanted
    best = request.accept_mimetypes.best_match(["text/html", "application/pdf"], "text/html")
    return "pdf" if best == "application/pdf" else "html"


@bp.get("/v1/decisions/<decision_id>/notice")
@require_scopes("decisions:read")
@audited
def decision_notice(decision_id: str) -> Response:
    """The notice owed to the applicant of a declined or referred decision."""
    decision_id_or_404(decision_id)
    fmt = _format()
    state = gateway_state()
    stored = state.extras["decision_log"].get(decision_id)
    if stored is None:
        raise not_found(f"No decision with id {decision_id!r}.")
    reviews: ReviewLog = state.extras["reviews"]
    notice = notice_for(stored.parsed(), reviews.get(decision_id))
    if notice is None:
        raise not_found(f"Decision {decision_id} took no adverse action: there is no notice.")
    renderer: NoticeRenderer = state.extras["notices"]
    headers = {"Vary": "Accept", "Cache-Control": "no-store"}  # personal data
    if fmt == "pdf":
        headers["Content-Disposition"] = f'inline; filename="notice-{decision_id}.pdf"'
        return Response(renderer.pdf(notice), headers=headers, mimetype="application/pdf")
    return Response(renderer.html(notice), headers=headers, mimetype="text/html")
