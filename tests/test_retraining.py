"""Retraining on labelled decisions: a challenger, never a champion."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from gateway.batch.runner import score_file
from gateway.outcomes import OutcomeRow
from gateway.retraining import NotEnoughData, labelled_decisions, retrain_challenger
from tests.conftest import MODEL_NAME
from tests.helpers import DATA


def _decide_file(app: Flask, tmp_path: Path, rows: int) -> dict[str, str]:
    """Decide the first ``rows`` German credit rows in batch; decision id -> true label."""
    with DATA.open(encoding="utf-8", newline="") as fh:
        records = list(csv.DictReader(fh))[:rows]
    labels = [r.pop("creditability") for r in records]
    source = tmp_path / "applications.csv"
    with source.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    state = app.extensions["loangate"]
    out = tmp_path / "decided.csv"
    score_file(
        state.extras["pipelines"]["credit-risk"],
        state.engine,
        source,
        fmt="csv",
        client_id="retraining-test",
        output=out,
        decision_log=state.extras["decision_log"],
    )
    with out.open(encoding="utf-8", newline="") as fh:
        decided = list(csv.DictReader(fh))
    return {
        row["decision_id"]: labels[int(row["row_number"]) - 1]
        for row in decided
        if row["outcome"] == "approve"
    }


def test_a_challenger_is_trained_on_labelled_decisions(app: Flask, tmp_path: Path) -> None:
    approved = _decide_file(app, tmp_path, 600)
    assert len(approved) > 150
    state = app.extensions["loangate"]
    rows = [
        OutcomeRow(decision_id, "defaulted" if label == "bad" else "repaid", date.today())
        for decision_id, label in approved.items()
    ]
    recorded = state.extras["outcomes"].record(rows, "tests")
    assert not isinstance(recorded, list), recorded

    with pytest.raises(NotEnoughData, match="at least 10000"):
        retrain_challenger(state, MODEL_NAME, "credit-risk", min_rows=10000)

    data = labelled_decisions(state, "credit-risk", MODEL_NAME)
    assert sorted(data.decision_ids) == sorted(approved)
    # personal values were opened for training: ages are numbers, not envelopes
    assert data.frame["age_in_years"].map(type).eq(int).all()
    info = retrain_challenger(state, MODEL_NAME, "credit-risk", min_rows=100)
    assert info.stage == "challenger" and info.version == 2
    registry: Any = state.extras["registry"]
    assert registry.get(MODEL_NAME, stage="champion").version == 1  # never promoted by itself
    assert info.metadata["retrained_from"]["decisions"] == len(approved)
    assert info.metadata["training_data"]["sha256"] == data.sha256
    assert info.metadata["training_data"]["file"] == "decision-log:credit-risk"
    assert 0.0 < info.metadata["metrics"]["auc"] <= 1.0
