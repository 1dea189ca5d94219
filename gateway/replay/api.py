"""``POST /v1/decisions/{id}/replay``: replay one logged decision (scope ``decisions:read``).

Replay reads the log and writes nothing; what its report shows (the logged and replayed
values of the members that differ) is what the decision record already shows an
auditor, so it takes the auditor's scope. As on the record, the values of personal and
protected fields are masked for a caller without ``pii:read``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, g

from gateway.api.access import audited
from gateway.api.inputs import decision_id_or_404
from gateway.auth import current_principal, require_scopes
from gateway.errors import not_found
from gateway.http import json_response
from gateway.state import gateway_state

bp = Blueprint("replay", __name__)

#: The scope that shows personal and protected values in clear (as on the record itself).
PII_READ = "pii:read"
#: Record members holding applicant values: by field name, and as ``{field, value}`` items.
FIELD_MAPS = ("application", "features")
FIELD_LISTS = ("imputations", "enrichments")
#: What replaces a hidden value.
MASKED = {"$masked": True}

_VALUE: dict[str, Any] = {"description": "any JSON value"}
#: JSON Schema of the report (``components.schemas.ReplayReport`` in the OpenAPI document).
REPLAY_REPORT: dict[str, Any] = {
    "type": "object",
    "required": ["decision_id", "reproduced", "model", "policy"],
    "properties": {
        "decision_id": {"type": "string"},
        "reproduced": {
            "type": ["boolean", "null"],
            "description": "true: every compared member matched; false: see differences; "
            "null: not replayable (see reason)",
        },
        "model": {"type": ["object", "null"], "description": "the logged model version"},
        "policy": {
            "type": ["object", "null"],
            "description": "the logged policy name and version",
        },
        "differences": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["member", "logged", "replayed"],
                "properties": {
                    "member": {"type": "string", "description": "JSON Pointer into the record"},
                    "logged": _VALUE,
                    "replayed": _VALUE,
                },
            },
        },
        "max_abs_deviation": {
            "type": "number",
            "description": "largest numeric difference tolerated (at most 1e-12)",
        },
        "reason": {
            "enum": [
                "erased",
                "unreadable",
                "rejected-before-pipeline",
                "pipeline-unknown",
                "model-unavailable",
                "policy-unknown",
                "not-replayable",
            ]
        },
        "detail": {"type": "string"},
    },
}


@bp.post("/v1/decisions/<decision_id>/replay")
@require_scopes("decisions:read")
@audited  # a replay shows the record's values: it is a read, kept in the access trail
def replay_decision(decision_id: str) -> Response:
    """Re-run one decision with its logged model and policy versions; the report."""
    decision_id_or_404(decision_id)
    state = gateway_state()
    stored = state.extras["decision_log"].get(decision_id)
    if stored is None:
        raise not_found(f"No decision with id {decision_id!r}.")
    document = stored.parsed()
    report = state.extras["replayer"].replay(document).as_dict()
    g.trail_result_count = 1
    if not current_principal().has(PII_READ):
        report = mask_differences(report, document, _hidden_fields(document))
    return json_response(report)


def _hidden_fields(document: Mapping[str, Any]) -> frozenset[str]:
    """The personal and protected fields of the decision's pipeline."""
    personal = gateway_state().extras.get("personal_data")
    if personal is None:
        return frozenset()
    pipeline = str(document.get("pipeline"))
    return frozenset(
        getattr(personal, "personal", {}).get(pipeline, frozenset())
        | getattr(personal, "protected", {}).get(pipeline, frozenset())
    )


def _field_of(member: str, document: Mapping[str, Any]) -> str | None:
    """The application field a difference's member holds a value of; ``None`` when the
    member holds values of several fields (a whole list or map)."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in member.split("/")[1:]]
    if len(parts) < 2:
        return None
    if parts[0] in FIELD_MAPS:
        return parts[1]
    items = document.get(parts[0])
    if isinstance(items, list) and parts[1].isdigit() and int(parts[1]) < len(items):
        item = items[int(parts[1])]
        return str(item.get("field")) if isinstance(item, Mapping) else None
    return None


def mask_differences(
    report: dict[str, Any], document: Mapping[str, Any], hidden: frozenset[str]
) -> dict[str, Any]:
    """``report`` with the values of personal and protected fields masked, as the record
    itself is masked for a caller without ``pii:read``; the member paths stay."""
    masked = []
    for difference in report.get("differences", ()):
        member = difference["member"]
        if member.split("/")[1] in (*FIELD_MAPS, *FIELD_LISTS):
            field = _field_of(member, document)
            if field is None or field in hidden:
                difference = {**difference, "logged": MASKED, "replayed": MASKED}
        masked.append(difference)
    return {**report, "differences": masked} if "differences" in report else report
