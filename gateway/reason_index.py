"""The reason-code index: one ``decision_reasons`` row per (decision, reason code).

Reason codes live inside each decision's JSON document; filtering and grouping on them
at scale needs them as rows. :func:`reason_rows` is a decision-log companion
(:data:`gateway.decision_log.Companion`), so the rows are committed in the decision's own
transaction on every path (REST, SOAP, mapped XML, batch): a decision is never logged
without its index rows, nor the other way round.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Table

from gateway.tables import DecisionReason

decision_reasons: Table = DecisionReason.__table__  # type: ignore[assignment]


def reason_codes(document: Mapping[str, Any]) -> list[str]:
    """The reason codes of ``document``, in the order the explainer ranked them, once each."""
    seen: dict[str, None] = {}
    for reason in document.get("reason_codes") or ():
        seen.setdefault(str(reason["code"]), None)
    return list(seen)


def reason_rows(document: Mapping[str, Any]) -> Iterator[tuple[Table, dict[str, Any]]]:
    """The ``decision_reasons`` rows of one decision document."""
    for code in reason_codes(document):
        yield decision_reasons, {"decision_id": document["decision_id"], "code": code}
