"""Batch test files: German credit rows resampled and written from a copybook."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from gateway.batch.copybook import Copybook, encode_record, load_copybook

ROOT = Path(__file__).resolve().parents[1]
COPYBOOK = ROOT / "config" / "copybooks" / "german-credit.cpy"
GERMAN = ROOT / "gateway" / "data" / "german_credit.csv"
CODES = ROOT / "config" / "codes" / "german_credit_codes.csv"


def german_rows() -> list[dict[str, object]]:
    """The 1,000 German credit applications (label column dropped), as Python values."""
    frame = pd.read_csv(GERMAN).drop(columns=["creditability"])
    return [
        {k: (v if isinstance(v, str) else int(v)) for k, v in r.items()}
        for r in frame.to_dict("records")
    ]


def _codes() -> dict[tuple[str, str], str]:
    with open(CODES, newline="", encoding="utf-8") as handle:
        return {(r["column"], r["label"]): r["code"] for r in csv.DictReader(handle)}


def coded(row: dict[str, object]) -> dict[str, object]:
    """A row with its categories as the legacy codes a mainframe extract carries."""
    codes = _codes()
    return {k: codes.get((k, v), v) if isinstance(v, str) else v for k, v in row.items()}


def write_fixed(
    path: Path, rows: int, *, seed: int = 7, encoding: str = "cp037", book: Copybook | None = None
) -> np.ndarray:
    """Write ``rows`` records resampled (seeded) from German credit; the source indices."""
    book = book or load_copybook(COPYBOOK)
    source = german_rows()
    codes = _codes()
    encoded = [
        encode_record(
            book,
            {k: codes.get((k, v), v) if isinstance(v, str) else v for k, v in row.items()},
            encoding,
        )
        for row in source
    ]
    picks = np.random.default_rng(seed).integers(0, len(source), rows)
    with open(path, "wb") as handle:
        handle.write(b"".join(encoded[i] for i in picks))
    return picks
