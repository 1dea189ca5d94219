"""Retraining: a candidate trained on recent labelled decisions, registered as challenger.

The rows are the decisions of a pipeline (scored by the model being retrained) whose
loan outcome is known: the application's fields as validated (imputed values filled,
personal values opened for training and never written anywhere else) and the outcome
as the target (``defaulted`` = bad). Decisions whose personal data was erased are left
out. The new version is registered at the ``challenger`` stage, so it scores in shadow
where a pipeline declares one; it is never promoted by this module. The training rows
are identified in the metadata by the sha256 of their decision ids and labels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pandas as pd
from sqlalchemy import select

from gateway.derived import DEMO_DERIVATIONS
from gateway.registry import ModelVersionInfo
from gateway.state import GatewayState
from gateway.tables import Decision, LoanOutcome
from gateway.training import POSITIVE_LABEL, TARGET, prepare_training_data, train

#: Fewest labelled decisions a retraining accepts (a holdout of a quarter must mean something).
MIN_ROWS = 200


class NotEnoughData(ValueError):
    """Too few labelled decisions to train on."""


@dataclass(frozen=True)
class LabelledDecisions:
    """Training rows built from the decision log."""

    frame: pd.DataFrame
    decision_ids: list[str]
    skipped_erased: int

    @property
    def sha256(self) -> str:
        """Identity of the training set: its decision ids and labels, in order."""
        digest = hashlib.sha256()
        for decision_id, label in zip(self.decision_ids, self.frame[TARGET], strict=True):
            digest.update(f"{decision_id}:{label}\n".encode())
        return digest.hexdigest()


def labelled_decisions(
    state: GatewayState,
    pipeline: str,
    model_name: str,
    since: datetime | None = None,
    limit: int = 100_000,
) -> LabelledDecisions:
    """The pipeline's decided applications with a known loan outcome, newest first."""
    d, o = Decision.__table__.c, LoanOutcome.__table__.c
    stmt = (
        select(d.id, d.document, o.status)
        .join(LoanOutcome.__table__, o.decision_id == d.id)
        .where(d.pipeline == pipeline, d.model_name == model_name, d.status_code == 201)
        .order_by(d.id.desc())
        .limit(limit)
    )
    if since is not None:
        stmt = stmt.where(d.received_at >= since)
    with state.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    personal = state.extras.get("personal_data")
    documents = [orjson.loads(r.document) for r in rows]
    if personal is not None:
        documents = personal.reveal_many(documents, can_read=True)
    derived = {d["name"] for d in DEMO_DERIVATIONS}
    records, ids, erased = [], [], 0
    for row, doc in zip(rows, documents, strict=True):
        fields = {k: v for k, v in doc["features"].items() if k not in derived}
        if any(isinstance(v, dict) for v in fields.values()):  # an erased or masked value
            erased += 1
            continue
        fields[TARGET] = POSITIVE_LABEL if row.status == "defaulted" else "good"
        records.append(fields)
        ids.append(row.id)
    return LabelledDecisions(pd.DataFrame.from_records(records), ids, erased)


def retrain_challenger(
    state: GatewayState,
    name: str,
    pipeline: str,
    *,
    kind: str | None = None,
    since: datetime | None = None,
    min_rows: int = MIN_ROWS,
    created_by: str = "retraining",
) -> ModelVersionInfo:
    """Train a new version of ``name`` on labelled decisions; register it as challenger."""
    registry = state.extras["registry"]
    champion = registry.get(name, stage="champion")
    data = labelled_decisions(state, pipeline, name, since)
    if len(data.decision_ids) < min_rows:
        raise NotEnoughData(
            f"{len(data.decision_ids)} labelled decisions of {pipeline!r} scored by {name!r} "
            f"(at least {min_rows} needed)"
        )
    if data.frame[TARGET].nunique() < 2:
        raise NotEnoughData("the labelled decisions hold only one outcome")
    prepared = prepare_training_data(
        data.frame, source=f"decision-log:{pipeline}", sha256=data.sha256
    )
    model = train(kind=kind or champion.kind, prepared=prepared)
    metadata: dict[str, Any] = {
        **model.metadata,
        "retrained_from": {
            "model": name,
            "champion_version": champion.version,
            "pipeline": pipeline,
            "decisions": len(data.decision_ids),
            "skipped_erased": data.skipped_erased,
            "since": since.isoformat() if since else None,
        },
    }
    info: ModelVersionInfo = registry.register(
        name, model.estimator, metadata, kind=model.kind, stage="challenger", created_by=created_by
    )
    return info
