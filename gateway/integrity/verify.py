"""``verify``: recompute every record hash, Merkle root and checkpoint link.

One pass over ``decision_seals`` joined to ``decisions`` in sequence order, streamed in
chunks (memory stays flat whatever the log's size); on PostgreSQL the server digests
each document so only the columns and 32 bytes per row are fetched. Findings name the
record: a changed row is a hash mismatch on its id, a deleted row a seal whose decision
is gone, a deleted seal a gap in the sequence, a forged or back-dated row an unsealed
decision older than the sealing window.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from gateway.integrity import merkle
from gateway.integrity.chain import GENESIS, Checkpoint
from gateway.integrity.records import decisions, hash_selected, selected_columns
from gateway.integrity.sealer import LATE_AFTER, checkpoints, head, seals, window_floor

CHUNK = 20_000
#: Findings listed in full; the rest are counted.
MAX_FINDINGS = 100


@dataclass(frozen=True)
class Finding:
    """One thing wrong with the log: its kind, the record (or checkpoint) and what."""

    kind: str  # altered | missing | gap | unsealed | seal | checkpoint | chain
    detail: str
    decision_id: str | None = None
    seq: int | None = None
    checkpoint: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Report:
    """The outcome of a verification."""

    records: int = 0
    checkpoints: int = 0
    head: str = GENESIS
    pending: int = 0  # committed, unsealed, still inside the sealing window
    findings: list[Finding] = field(default_factory=list)
    more_findings: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, finding: Finding) -> None:
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(finding)
        else:
            self.more_findings += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "head": self.head,
            "pending": self.pending,
            "first_problem": self.findings[0].as_dict() if self.findings else None,
            "problems": [f.as_dict() for f in self.findings],
            "more_problems": self.more_findings,
        }


def _stream(engine: Engine, stmt: Any) -> Iterator[Any]:
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=CHUNK).execute(stmt)
        yield from result


def _sealed_rows(engine: Engine, last_seq: int) -> Iterator[Any]:
    stmt = (
        select(
            seals.c.seq,
            seals.c.record_hash,
            seals.c.checkpoint_id,
            seals.c.decision_id,
            *selected_columns(engine.dialect.name),
        )
        .select_from(seals.outerjoin(decisions, decisions.c.id == seals.c.decision_id))
        .where(seals.c.seq <= last_seq)
        .order_by(seals.c.seq)
    )
    return _stream(engine, stmt)


def verify(
    engine: Engine, *, late_after: float = LATE_AFTER, anchors: Mapping[int, str] | None = None
) -> Report:
    """Check the whole log; findings name the first broken or missing records.

    ``anchors`` maps checkpoint ids to hashes exported earlier (kept outside the
    database): a stored checkpoint that differs from its anchor, or an anchored one that
    is gone, is a finding even if the chain was rebuilt consistently.
    """
    report = Report()
    anchors = anchors or {}
    # Sealers may commit while this runs: check up to the head seen now. A checkpoint and
    # its seals commit together, so everything up to it is complete.
    with engine.connect() as conn:
        top = head(conn)
    head_id, head_last = (top.id, top.last_seq) if top else (0, 0)
    rows = _sealed_rows(engine, head_last)
    pending_row: Any = next(rows, None)
    prev_hash = GENESIS
    expected_seq = 1
    last: Checkpoint | None = None
    stmt = select(checkpoints).where(checkpoints.c.id <= head_id).order_by(checkpoints.c.id)
    for cp_row in _stream(engine, stmt):
        cp = Checkpoint.from_row(cp_row)
        report.checkpoints += 1
        if cp.id != report.checkpoints:
            report.add(
                Finding("chain", f"checkpoint {report.checkpoints} is missing", checkpoint=cp.id)
            )
        if cp.prev_hash != prev_hash:
            report.add(
                Finding("chain", "does not link to the previous checkpoint", checkpoint=cp.id)
            )
        if cp.computed_hash() != cp.hash:
            report.add(
                Finding("checkpoint", "checkpoint fields do not match its hash", checkpoint=cp.id)
            )
        if cp.first_seq != expected_seq:
            report.add(
                Finding(
                    "gap",
                    f"seals {expected_seq}..{cp.first_seq - 1} are missing",
                    seq=expected_seq,
                    checkpoint=cp.id,
                )
            )
        if cp.id in anchors and anchors[cp.id] != cp.hash:
            report.add(Finding("chain", "differs from its exported anchor", checkpoint=cp.id))
        hashes: list[bytes] = []
        seq = cp.first_seq
        last_seq, cp_id = cp.last_seq, cp.id
        # The hot loop (a million rows in seconds): tuple indices, no per-row allocations
        # beyond the hash; findings are rare and built only when needed.
        while pending_row is not None and pending_row[0] <= last_seq:
            row, pending_row = pending_row, next(rows, None)
            row_seq, stored, row_cp, decision_id = row[0], row[1], row[2], row[3]
            if row_seq != seq:
                report.add(
                    Finding(
                        "gap", f"seals {seq}..{row_seq - 1} are missing", seq=seq, checkpoint=cp_id
                    )
                )
            seq = row_seq + 1
            if row_cp != cp_id:
                report.add(
                    Finding(
                        "seal",
                        f"seal names checkpoint {row_cp}",
                        decision_id=decision_id,
                        seq=row_seq,
                        checkpoint=cp_id,
                    )
                )
            if row[4] is None:
                report.add(
                    Finding(
                        "missing",
                        "sealed decision is gone from the log",
                        decision_id=decision_id,
                        seq=row_seq,
                        checkpoint=cp_id,
                    )
                )
                hashes.append(bytes.fromhex(stored))
                continue
            actual = hash_selected(row[4:])
            if actual.hex() != stored or row[4] != decision_id:
                report.add(
                    Finding(
                        "altered",
                        "record does not match its sealed hash",
                        decision_id=decision_id,
                        seq=row_seq,
                        checkpoint=cp_id,
                    )
                )
            hashes.append(actual)
        report.records += len(hashes)
        if seq != cp.last_seq + 1:
            report.add(
                Finding("gap", f"seals {seq}..{cp.last_seq} are missing", seq=seq, checkpoint=cp.id)
            )
        elif merkle.root(hashes).hex() != cp.merkle_root:
            report.add(
                Finding(
                    "checkpoint", "Merkle root does not match the sealed records", checkpoint=cp.id
                )
            )
        prev_hash, expected_seq, last = cp.hash, cp.last_seq + 1, cp
        report.head = cp.hash
    while pending_row is not None:
        report.records += 1
        report.add(
            Finding(
                "seal",
                "seal outside any checkpoint",
                decision_id=pending_row.decision_id,
                seq=pending_row.seq,
            )
        )
        pending_row = next(rows, None)
    _check_orphans(engine, report, head_last)
    for gone in sorted(i for i in anchors if i > report.checkpoints):
        report.add(Finding("chain", "anchored checkpoint is gone", checkpoint=gone))
    _check_unsealed(engine, report, last, late_after)
    return report


def _check_orphans(engine: Engine, report: Report, head_last: int) -> None:
    """Seals beyond the head that no checkpoint covers (forged, or their checkpoint deleted)."""
    covered = select(checkpoints.c.id).where(checkpoints.c.id == seals.c.checkpoint_id).exists()
    stmt = (
        select(seals.c.seq, seals.c.decision_id)
        .where(seals.c.seq > head_last, ~covered)
        .order_by(seals.c.seq)
        .limit(MAX_FINDINGS)
    )
    with engine.connect() as conn:
        for seq, decision_id in conn.execute(stmt):
            report.records += 1
            report.add(
                Finding("seal", "seal outside any checkpoint", decision_id=decision_id, seq=seq)
            )


def _check_unsealed(
    engine: Engine, report: Report, last: Checkpoint | None, late_after: float
) -> None:
    """Unsealed rows: pending inside the window, or late (reported by id)."""
    no_seal = ~select(seals.c.decision_id).where(seals.c.decision_id == decisions.c.id).exists()
    with engine.connect() as conn:
        unsealed = conn.execute(
            select(func.count()).select_from(decisions).where(no_seal)
        ).scalar_one()
        late: list[Any] = []
        floor = window_floor(conn, last, late_after)
        if floor is not None:  # before the first seal, everything is simply pending
            late = list(
                conn.execute(
                    select(decisions.c.id)
                    .where(decisions.c.id < floor, no_seal)
                    .order_by(decisions.c.id)
                    .limit(MAX_FINDINGS)
                ).scalars()
            )
    for decision_id in late:
        report.add(
            Finding(
                "unsealed",
                "decision is not in the chain and older than the sealing window",
                decision_id=decision_id,
            )
        )
    report.pending = int(unsealed) - len(late)
