"""Evidence bundles: one decision with everything needed to check it without the database.

A bundle holds the record (its columns and stored document), its seal (sequence
number and record hash), the Merkle audit path up to its checkpoint, the checkpoint
with its link to the previous one, and the model version and policy it was decided
with. :func:`check_bundle` is the offline procedure of ``docs/auditors.md``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import orjson
from sqlalchemy import Engine, Table, select

from gateway.integrity import merkle
from gateway.integrity.chain import Checkpoint
from gateway.integrity.records import (
    COLUMNS,
    canonical_values,
    decisions,
    document_digest,
    record_hash,
)
from gateway.integrity.sealer import checkpoints, seals
from gateway.tables import ModelVersion

FORMAT = "loangate-evidence-v1"
model_versions: Table = ModelVersion.__table__  # type: ignore[assignment]


class NotSealed(Exception):
    """The decision exists but is not in the chain yet (inside the sealing window)."""


def build_bundle(engine: Engine, decision_id: str) -> dict[str, Any] | None:
    """The evidence bundle of ``decision_id``; ``None`` if there is no such decision."""
    with engine.connect() as conn:
        row = conn.execute(select(decisions).where(decisions.c.id == decision_id)).first()
        if row is None:
            return None
        seal = conn.execute(select(seals).where(seals.c.decision_id == decision_id)).first()
        if seal is None:
            raise NotSealed(decision_id)
        cp = Checkpoint.from_row(
            conn.execute(select(checkpoints).where(checkpoints.c.id == seal.checkpoint_id)).one()
        )
        batch = (
            conn.execute(
                select(seals.c.record_hash)
                .where(seals.c.seq.between(cp.first_seq, cp.last_seq))
                .order_by(seals.c.seq)
            )
            .scalars()
            .all()
        )
        model = None
        if row.model_name is not None:
            mv = conn.execute(
                select(model_versions).where(
                    model_versions.c.name == row.model_name,
                    model_versions.c.version == row.model_version,
                )
            ).first()
            if mv is not None:
                model = {
                    "name": mv.name,
                    "version": mv.version,
                    "kind": mv.kind,
                    "sha256": mv.sha256,
                    "metadata": orjson.loads(mv.metadata_json),
                }
    values = canonical_values(dict(row._mapping))
    document = orjson.loads(row.document)
    index = seal.seq - cp.first_seq
    proof = merkle.inclusion_proof([bytes.fromhex(h) for h in batch], index)
    return {
        "format": FORMAT,
        "record": {"columns": dict(zip(COLUMNS, values, strict=True)), "document": row.document},
        "seal": {"seq": seal.seq, "record_hash": seal.record_hash, "checkpoint_id": cp.id},
        "inclusion_proof": {
            "leaf_index": index,
            "tree_size": cp.size,
            "path": [p.hex() for p in proof],
        },
        "checkpoint": cp.as_dict(),
        "model": model,
        "policy": document.get("policy"),
    }


def check_bundle(data: bytes, anchors: Collection[str] = ()) -> list[str]:
    """Problems found in a serialised bundle (empty: it verifies).

    With ``anchors`` (checkpoint hashes exported earlier and kept outside the
    database), the bundle's checkpoint must be one of them.
    """
    try:
        return _check(orjson.loads(data), anchors)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        # Anything that is not a well-formed bundle fails, whatever was broken.
        return [f"malformed bundle ({type(exc).__name__})"]


def _check(bundle: Any, anchors: Collection[str]) -> list[str]:
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        return [f"not a {FORMAT} bundle"]
    record, seal, proof = bundle["record"], bundle["seal"], bundle["inclusion_proof"]
    columns = record["columns"]
    values = [columns[c] for c in COLUMNS]
    if set(columns) != set(COLUMNS):
        return ["record columns are not the expected set"]
    if canonical_values(values) != values:  # one spelling per value: no equivalent rewrites
        return ["record columns are not in canonical form"]
    doc_text = record["document"]
    cp = Checkpoint(**bundle["checkpoint"])
    digest = record_hash(values, document_digest(doc_text))
    path = [bytes.fromhex(p) for p in proof["path"]]
    document = orjson.loads(doc_text)
    problems = []
    if digest.hex() != seal["record_hash"]:
        problems.append("record does not match its sealed record hash")
    if proof["tree_size"] != cp.size or proof["leaf_index"] != seal["seq"] - cp.first_seq:
        problems.append("proof position does not match the seal and checkpoint")
    if not merkle.verify_inclusion(
        digest, proof["leaf_index"], cp.size, path, bytes.fromhex(cp.merkle_root)
    ):
        problems.append("inclusion proof does not lead to the checkpoint's Merkle root")
    if seal["checkpoint_id"] != cp.id or cp.computed_hash() != cp.hash:
        problems.append("checkpoint does not match its hash")
    if anchors and cp.hash not in anchors:
        problems.append("checkpoint is not among the anchored checkpoint hashes")
    if not isinstance(document, dict) or document.get("decision_id") != columns["id"]:
        problems.append("document is not the record's")
    else:
        if document.get("probability_of_default") != columns["probability"]:
            problems.append("document and record disagree on the probability")
        if document.get("outcome") != columns["outcome"]:
            problems.append("document and record disagree on the outcome")
    model = bundle.get("model")
    if columns["model_sha256"] is not None and (
        not isinstance(model, dict)
        or model.get("sha256") != columns["model_sha256"]
        or model.get("name") != columns["model_name"]
        or model.get("version") != columns["model_version"]
    ):
        problems.append("model version does not match the record")
    policy = bundle.get("policy")
    if columns["policy_version"] is not None and (
        not isinstance(policy, dict) or policy.get("version") != columns["policy_version"]
    ):
        problems.append("policy version does not match the record")
    return problems
