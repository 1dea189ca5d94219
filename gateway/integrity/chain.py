"""Checkpoints: the hash that links one sealed batch to the previous one."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

PREFIX = b"loangate-checkpoint-v1\n"
#: ``prev_hash`` of the first checkpoint.
GENESIS = "0" * 64


@dataclass(frozen=True)
class Checkpoint:
    """A sealed batch: seals ``first_seq``..``last_seq`` under ``merkle_root``."""

    id: int
    first_seq: int
    last_seq: int
    merkle_root: str
    prev_hash: str
    sealed_at: str
    hash: str

    @property
    def size(self) -> int:
        return self.last_seq - self.first_seq + 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: Any) -> Checkpoint:
        m: Mapping[str, Any] = row._mapping if hasattr(row, "_mapping") else row
        return cls(
            int(m["id"]),
            int(m["first_seq"]),
            int(m["last_seq"]),
            str(m["merkle_root"]),
            str(m["prev_hash"]),
            str(m["sealed_at"]),
            str(m["hash"]),
        )

    def computed_hash(self) -> str:
        """What ``hash`` must be, recomputed from the other fields."""
        return checkpoint_hash(
            self.id, self.first_seq, self.last_seq, self.merkle_root, self.prev_hash, self.sealed_at
        )


def checkpoint_hash(
    id_: int, first_seq: int, last_seq: int, merkle_root: str, prev_hash: str, sealed_at: str
) -> str:
    """sha256 (hex) of the checkpoint's fields, one per line, after a version prefix."""
    text = f"{id_}\n{first_seq}\n{last_seq}\n{merkle_root}\n{prev_hash}\n{sealed_at}"
    return hashlib.sha256(PREFIX + text.encode()).hexdigest()
