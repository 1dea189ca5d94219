"""The batch decision function gives each row the document the single-request path gives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.batch.decide import decide_frame, frame_records
from gateway.pipeline import Stage
from tests.conftest import bearer
from tests.helpers import applicants

URL = "/v1/pipelines/credit-risk/decisions"
APPLICANTS = applicants()
FIELDS = list(APPLICANTS[0])
#: What may differ between two decisions of the same application (ids, clocks, transport).
VOLATILE = {
    "decision_id",
    "personal_data",  # each decision without a subject field is its own subject
    "request_id",
    "received_at",
    "decided_at",
    "timings_ms",
    "adapter",
    "client_id",
    "application_id",
    "idempotency_key",
}

# Hostile and unusual values first: wrong types, out of range, unknown categories, legacy codes.
odd_values = st.sampled_from(
    [None, "", "A11", "A43", "not a category", -1, 0, 10**9, 2.5, True, "12", 1e308]
)


@st.composite
def rows(draw: st.DrawFn) -> dict[str, Any]:
    row = dict(APPLICANTS[draw(st.integers(0, len(APPLICANTS) - 1))])
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        value = draw(odd_values)
        if value is None:
            row.pop(name)
        else:
            row[name] = value
    return row


def as_frame(batch: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a frame of object columns (no widening): a missing field is a ``None`` cell."""
    names = list(dict.fromkeys(k for row in batch for k in row))
    return pd.DataFrame({n: pd.Series([r.get(n) for r in batch], dtype=object) for n in names})


def stored(app: Flask, decision_id: str) -> dict[str, Any]:
    found = app.extensions["loangate"].extras["decision_log"].get(decision_id)
    assert found is not None
    return found.parsed()


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in VOLATILE}


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(rows(), min_size=1, max_size=12))
def test_each_row_gets_the_single_request_document(
    app: Flask, client: FlaskClient, get_token: Callable[..., str], batch: list[dict[str, Any]]
) -> None:
    token = get_token("decisions:create")
    pipeline = app.extensions["loangate"].extras["pipelines"]["credit-risk"]
    frame = as_frame(batch)
    personal = app.extensions["loangate"].extras["personal_data"]
    results = decide_frame(pipeline, frame, client_id="batch-test", protect=personal.protect_many)
    assert len(results) == len(batch)
    for row, result in zip(batch, results, strict=True):
        resp = client.post(URL, json={"applicant": row}, headers=bearer(token))
        # the stored single record, opened, is the batch row's document in clear
        single = personal.reveal(stored(app, resp.get_json()["decision_id"]), can_read=True)
        batch_doc = result.document
        assert batch_doc["adapter"] == "batch"
        p_single, p_batch = single["probability_of_default"], batch_doc["probability_of_default"]
        assert (p_single is None) == (p_batch is None)
        if p_single is not None:
            assert abs(p_single - p_batch) <= 1e-12
        expected, got = comparable(single), comparable(batch_doc)
        expected.pop("probability_of_default"), got.pop("probability_of_default")
        assert got == expected
        assert result.row["status_code"] == resp.status_code


def test_frame_records_drop_missing_cells_and_keep_python_types() -> None:
    frame = pd.DataFrame({"a": [1, None], "b": ["x", float("nan")], "c": [2.5, 3.0]})
    records = frame_records(frame)
    assert records[1] == {"c": 3}
    assert type(records[0]["a"]) is int  # pandas widened it to float; it was an integer
    assert records[0]["c"] == 2.5
    assert records[0]["b"] == "x"
    assert frame_records(pd.DataFrame({"n": pd.Series([7], dtype="int64")}))[0]["n"] == 7
    assert type(frame_records(pd.DataFrame({"n": pd.Series([7], dtype="int64")}))[0]["n"]) is int


def test_a_row_the_model_cannot_score_fails_alone(app: Flask) -> None:
    """The frame path raising falls back to the per-row engine: one row fails, the rest decide."""
    pipeline = app.extensions["loangate"].extras["pipelines"]["credit-risk"]
    scorer = pipeline.scorer
    calls: list[int] = []

    def score_many(ctxs: Any) -> Any:
        calls.append(len(ctxs))
        raise RuntimeError("frame path down")

    def score(ctx: Any) -> Any:
        if ctx.raw.get("credit_amount") == 4242:
            raise RuntimeError("model error")
        return scorer.score(ctx)

    stages = tuple(
        Stage("scorer", scorer, score) if s.kind == "scorer" else s for s in pipeline.stages
    )
    scorer.score_many = score_many  # type: ignore[method-assign]
    try:
        frame = as_frame([APPLICANTS[0], {**APPLICANTS[1], "credit_amount": 4242}, APPLICANTS[2]])
        docs = [
            r.document for r in decide_frame(replace(pipeline, stages=stages), frame, client_id="t")
        ]
    finally:
        del scorer.score_many
    assert calls == [3]
    assert [d["status"] for d in docs] == ["decided", "error", "decided"]
    assert docs[1]["status_code"] == 500 and docs[1]["error"]["type"].endswith("internal-error")
    assert "policy:threshold" not in docs[1]["timings_ms"]  # it stopped at the failing stage


@pytest.mark.parametrize("bad", [{"duration_in_month": "six"}, {"purpose": None}])
def test_rejections_are_documents_too(app: Flask, bad: dict[str, Any]) -> None:
    pipeline = app.extensions["loangate"].extras["pipelines"]["credit-risk"]
    row = {**APPLICANTS[0], **bad}
    row = {k: v for k, v in row.items() if v is not None}
    frame = as_frame([row, APPLICANTS[3]])
    first, second = (r.document for r in decide_frame(pipeline, frame, client_id="t"))
    assert first["status"] == "rejected" and first["status_code"] == 422
    assert first["errors"] and first["probability_of_default"] is None
    assert second["status"] == "decided"
