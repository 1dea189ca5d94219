"""The decision record: built once from the final context, logged, and answered.

The *document* is the whole record as JSON: what the log stores, what auditors read
(``GET /v1/decisions/{id}``) and what ``decision_logged`` hooks receive. The answer
to a caller is the document without the inputs (:func:`caller_view`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.context import DecisionContext
from gateway.errors import Problem

#: Members of the document left out of the answer to the caller who sent them.
INPUT_MEMBERS = ("application", "features")


def _status(ctx: DecisionContext, problem: Problem | None) -> tuple[str, int, str]:
    """(status, HTTP status code, outcome) of a finished context."""
    if problem is not None:
        kind = "rejected" if problem.client_error else "error"
        return kind, problem.status, kind
    if ctx.decision is None:
        return "error", 500, "error"
    return "decided", 201, ctx.decision.outcome


def build_document(ctx: DecisionContext, problem: Problem | None = None) -> dict[str, Any]:
    """The decision document for ``ctx`` (``problem`` set for rejections and errors)."""
    status, code, outcome = _status(ctx, problem)
    decided_at = datetime.now(UTC)
    return {
        "decision_id": ctx.decision_id,
        "request_id": ctx.request_id,
        "pipeline": ctx.pipeline,
        "adapter": ctx.adapter,
        "client_id": ctx.client_id,
        "application_id": ctx.application_id,
        "idempotency_key": ctx.idempotency_key,
        "received_at": ctx.received_at.isoformat(),
        "decided_at": decided_at.isoformat(),
        "status": status,
        "status_code": code,
        "outcome": outcome,
        "probability_of_default": ctx.score.probability if ctx.score else None,
        "model": ctx.score.model.as_dict() if ctx.score else None,
        "policy": ctx.decision.as_dict() if ctx.decision else None,
        "reason_codes": [r.as_dict() for r in ctx.decision.reason_codes] if ctx.decision else [],
        "explanation": ctx.explanation.as_dict() if ctx.explanation else None,
        "imputations": [i.as_dict() for i in ctx.imputations],
        "enrichments": [e.as_dict() for e in ctx.enrichments],
        "referral_notes": list(ctx.notes.get("refer", ())),
        "errors": [e.as_dict() for e in (problem.errors if problem else ctx.errors)],
        "error": {"type": problem.type, "title": problem.title, "detail": problem.detail}
        if problem
        else None,
        "timings_ms": {s.stage: s.elapsed_ms for s in ctx.stages},
        "stage_notes": {s.stage: s.note for s in ctx.stages if s.note},
        "application": dict(ctx.raw),
        "features": dict(ctx.features),
    }


def row_for(document: dict[str, Any], request_hash: str, payload: str) -> dict[str, Any]:
    """The ``decisions`` table row for a document serialised as ``payload``."""
    model = document["model"] or {}
    policy = document["policy"] or {}
    return {
        "id": document["decision_id"],
        "received_at": datetime.fromisoformat(document["received_at"]),
        "decided_at": datetime.fromisoformat(document["decided_at"]),
        "pipeline": document["pipeline"],
        "adapter": document["adapter"],
        "client_id": document["client_id"],
        "application_id": document["application_id"],
        "idempotency_key": document["idempotency_key"],
        "request_hash": request_hash,
        "status_code": document["status_code"],
        "outcome": document["outcome"],
        "probability": document["probability_of_default"],
        "model_name": model.get("name"),
        "model_version": model.get("version"),
        "model_sha256": model.get("sha256"),
        "policy_version": policy.get("version"),
        "document": payload,
    }


def caller_view(document: dict[str, Any]) -> dict[str, Any]:
    """The document as answered to its caller: without the inputs they sent."""
    view = {k: v for k, v in document.items() if k not in INPUT_MEMBERS}
    view["links"] = {"self": f"/v1/decisions/{document['decision_id']}"}
    return view


def auditor_view(payload: bytes, linked: Mapping[str, Any]) -> bytes:
    """The stored document ``payload`` with ``linked`` records as extra members.

    Records made after the decision (its human review, its loan outcome) are joined at
    read time: the stored bytes are spliced, never parsed, changed or re-serialised.
    """
    extra = b"".join(
        b',"' + name.encode() + b'":' + orjson.dumps(value) for name, value in linked.items()
    )
    return payload[: payload.rindex(b"}")] + extra + b"}"
