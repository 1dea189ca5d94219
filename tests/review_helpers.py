"""Helpers for the review, outcome and notice tests: decisions of a wanted outcome."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.conftest import bearer
from tests.helpers import applicants

URL = "/v1/pipelines/credit-risk/decisions"

#: Applicant indices already seen to give each outcome (the model is fixed per session).
_seen: dict[str, list[int]] = {}
_tried: set[int] = set()


def decide(client: FlaskClient, token: str, payload: dict[str, Any]) -> dict[str, Any]:
    resp = client.post(URL, json=payload, headers=bearer(token))
    assert resp.status_code == 201, resp.get_json()
    doc: dict[str, Any] = resp.get_json()
    return doc


def decisions_with(
    client: FlaskClient, token: str, outcome: str, count: int = 1, **overrides: Any
) -> list[dict[str, Any]]:
    """``count`` fresh decisions whose outcome is ``outcome`` (German credit applicants)."""
    rows = applicants()
    found: list[dict[str, Any]] = []
    for i in [*_seen.get(outcome, ()), *(i for i in range(len(rows)) if i not in _tried)]:
        if len(found) == count:
            break
        doc = decide(
            client, token, {"applicant": {**rows[i], **overrides}, "application_id": f"A{i}"}
        )
        if not overrides:
            _tried.add(i)
            if i not in _seen.setdefault(doc["outcome"], []):
                _seen[doc["outcome"]].append(i)
        if doc["outcome"] == outcome:
            found.append(doc)
    assert len(found) == count, f"not enough {outcome} decisions among the applicants"
    return found
