"""Test helpers: German credit applicants and request bodies."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.context import DecisionContext

DATA = Path(__file__).resolve().parent.parent / "gateway" / "data" / "german_credit.csv"
NUMERIC = {
    "duration_in_month",
    "credit_amount",
    "installment_rate_in_percentage_of_disposable_income",
    "present_residence_since",
    "age_in_years",
    "number_of_existing_credits_at_this_bank",
    "number_of_people_being_liable_to_provide_maintenance_for",
}


def applicants() -> list[dict[str, Any]]:
    """Every German credit row as an applicant (outcome column dropped)."""
    with DATA.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for row in rows:
        row.pop("creditability")
        out.append({k: int(v) if k in NUMERIC else v for k, v in row.items()})
    return out


def applicant(index: int = 1) -> dict[str, Any]:
    """One applicant; row 1 (0-based) is a risky one that is declined or referred."""
    return applicants()[index]


def body(index: int = 1, application_id: str | None = "LN-1", **overrides: Any) -> dict[str, Any]:
    """A REST request body for applicant ``index`` with fields overridden."""
    fields = {**applicant(index), **overrides}
    fields = {k: v for k, v in fields.items() if v is not ...}
    out: dict[str, Any] = {"applicant": fields}
    if application_id is not None:
        out["application_id"] = application_id
    return out


def context_for(raw: dict[str, Any], features: dict[str, Any] | None = None) -> DecisionContext:
    """A fresh decision context for one stage's unit test: ``raw`` as received,
    ``features`` as validated (default: none yet)."""
    return DecisionContext(
        decision_id="01J00000000000000000000000",
        request_id="r",
        pipeline="credit-risk",
        adapter="rest",
        client_id="tests",
        received_at=datetime.now(UTC),
        application_id=None,
        idempotency_key=None,
        request_hash="0" * 64,
        raw=raw,
        features=features or {},
    )
