"""The components' batch methods give, row for row, what their single-request methods give."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.batch.columns import evolve, exact_floats
from gateway.batch.decide import decide_frame
from gateway.components import COMPONENT_KINDS
from gateway.pipeline import Pipeline
from tests.helpers import applicants, context_for
from tests.test_batch_decide import VOLATILE, as_frame

APPLICANTS = applicants()
FIELDS = list(APPLICANTS[0])
MANY = {
    "validator": "validate_many",
    "enricher": "enrich_many",
    "explainer": "explain_many",
    "policy": "decide_many",
}

# Missing and invalid values first: wrong types, bounds, non-finite and huge numbers,
# legacy codes, unknown categories and fields.
odd_values = st.one_of(
    st.sampled_from(
        [
            None,
            "",
            "A11",
            "A43",
            "A410",
            "not a category",
            "12",
            True,
            False,
            -1,
            0,
            1,
            4,
            120,
            121,
            10**9,
            2**53 + 1,
            -(2**63),
            2**63 - 1,
            2.5,
            4.0,
            -0.0,
            1e308,
            float("inf"),
            float("-inf"),
        ]
    ),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, width=64),
)


@st.composite
def rows(draw: st.DrawFn) -> dict[str, Any]:
    row = dict(APPLICANTS[draw(st.integers(0, len(APPLICANTS) - 1))])
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=5, unique=True)):
        value = draw(odd_values)
        if value is None:
            row.pop(name)
        else:
            row[name] = value
    if draw(st.integers(0, 9)) == 0:
        row["shoe_size"] = 44  # a field the application does not have
    return row


@contextmanager
def per_row(pipeline: Pipeline) -> Iterator[None]:
    """Every validator, enricher, explainer and the policy on its single-request method
    (the base class's ``*_many``, a loop over the rows); the scorer is left as it is."""
    patched = []
    for stage in pipeline.stages:
        name = MANY.get(stage.kind)
        if name is None:
            continue
        base = getattr(COMPONENT_KINDS[stage.kind], name)
        setattr(stage.component, name, functools.partial(base, stage.component))
        patched.append((stage.component, name))
    try:
        yield
    finally:
        for component, name in patched:
            delattr(component, name)


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in VOLATILE}


def test_the_demo_pipeline_has_a_batch_method_at_every_stage(app: Flask) -> None:
    pipeline = app.extensions["loangate"].extras["pipelines"]["credit-risk"]
    for stage in pipeline.stages:
        name = MANY.get(stage.kind, "score_many")
        base = getattr(COMPONENT_KINDS[stage.kind], name)
        assert getattr(type(stage.component), name) is not base, stage.label


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(rows(), min_size=1, max_size=30))
def test_batch_methods_give_the_per_row_documents(app: Flask, batch: list[dict[str, Any]]) -> None:
    pipeline = app.extensions["loangate"].extras["pipelines"]["credit-risk"]
    frame = as_frame(batch)
    vectorised = decide_frame(pipeline, frame, client_id="t")
    with per_row(pipeline):
        looped = decide_frame(pipeline, frame, client_id="t")
    assert len(vectorised) == len(looped) == len(batch)
    for fast, slow in zip(vectorised, looped, strict=True):
        assert comparable(fast.document) == comparable(slow.document)
        assert fast.row["status_code"] == slow.row["status_code"]
        timings = fast.document["timings_ms"]
        assert list(timings) == list(slow.document["timings_ms"])  # the same stages ran


def test_a_chunk_of_rejections_and_decisions_mixes_nothing_up(app: Flask) -> None:
    pipeline = app.extensions["loangate"].extras["pipelines"]["credit-risk"]
    batch = [
        APPLICANTS[0],
        {**APPLICANTS[1], "credit_amount": "lots", "age_in_years": 200},
        {k: v for k, v in APPLICANTS[2].items() if k != "credit_history"},  # imputed
        {**APPLICANTS[3], "duration_in_month": 4.0},  # an integer field given a float
        {**APPLICANTS[4], "purpose": "A43"},  # a legacy code
    ]
    docs = [r.document for r in decide_frame(pipeline, as_frame(batch), client_id="t")]
    assert [d["status"] for d in docs] == ["decided", "rejected", "decided", "rejected", "decided"]
    assert [e["pointer"] for e in docs[1]["errors"]] == [
        "/applicant/credit_amount",
        "/applicant/age_in_years",
    ]
    assert {i["field"] for i in docs[2]["imputations"]} == {"credit_history"}
    assert docs[4]["application"]["purpose"] == "A43"  # as received; decided as its label
    for doc in (docs[0], docs[2], docs[4]):
        contributions = doc["explanation"]["contributions"]
        total = doc["explanation"]["base_value"] + sum(contributions.values())
        assert abs(total - doc["explanation"]["output"]) <= 1e-6
        assert "credit_history" not in {r["field"] for r in docs[2]["reason_codes"]}


def test_a_forced_referral_and_rule_hits_match_the_single_request_policy(app: Flask) -> None:
    pipeline = app.extensions["loangate"].extras["pipelines"]["credit-risk"]
    frame = as_frame([APPLICANTS[i] for i in range(6)])
    with per_row(pipeline):
        decided = [r for r in decide_frame(pipeline, frame, client_id="t")]
    assert all(r.document["status"] == "decided" for r in decided)
    # the policy's input: contexts through the explainer, one forced to refer, one hitting H01
    ctxs = []
    for i in range(6):
        row = {**APPLICANTS[i], "credit_amount": 25000} if i == 4 else APPLICANTS[i]
        ctx = context_for(row)
        for stage in pipeline.stages[:-1]:
            ctx = stage.run(ctx)
        if i == 2:
            ctx = evolve(ctx, notes={"refer": ("enricher:x unavailable",)})
        ctxs.append(ctx)
    policy = pipeline.policy
    many = policy.decide_many(ctxs)
    for one, ctx in zip(many, ctxs, strict=True):
        assert one.decision == policy.decide(ctx).decision
    assert many[2].decision is not None and many[2].decision.outcome in ("refer", "decline")
    assert many[4].decision is not None and many[4].decision.rule_hits


def test_exact_floats_leaves_out_what_float64_would_change() -> None:
    values, mask = exact_floats([1, 2.5, True, 2**53, "3", None, -(2**53) + 1])
    assert mask.tolist() == [True, True, False, False, False, False, True]
    assert values.tolist()[:2] == [1.0, 2.5]


def test_evolve_is_ctx_evolve() -> None:
    ctx = context_for(APPLICANTS[0])
    assert evolve(ctx, features={"a": 1}) == ctx.evolve(features={"a": 1})
    with pytest.raises(TypeError):
        evolve(ctx, nonsense=1)
