"""Derived features: one definition used by the enricher (per row) and training (per frame).

A derivation is ``{"name": ..., "op": ..., "args": [a, b]}`` with ``op`` one of
:data:`OPS`. A derivation with a missing or zero-divisor argument yields ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

Derivation = Mapping[str, Any]


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


OPS: dict[str, Callable[[float, float], float | None]] = {
    "ratio": _ratio,
    "product": lambda a, b: a * b,
    "sum": lambda a, b: a + b,
    "difference": lambda a, b: a - b,
}

#: The demo model's derivations (also declared in config/gateway.yaml).
DEMO_DERIVATIONS: tuple[Derivation, ...] = (
    {"name": "credit_per_month", "op": "ratio", "args": ["credit_amount", "duration_in_month"]},
)


def derive_row(features: Mapping[str, Any], derivations: Sequence[Derivation]) -> dict[str, Any]:
    """The derived values for one application (``None`` where an argument is missing)."""
    out: dict[str, Any] = {}
    for d in derivations:
        a, b = (features.get(arg) for arg in d["args"])
        out[d["name"]] = None if a is None or b is None else OPS[d["op"]](a, b)
    return out


def derive_frame(frame: pd.DataFrame, derivations: Sequence[Derivation]) -> pd.DataFrame:
    """Add the derived columns to a copy of ``frame`` (vectorised)."""
    out = frame.copy()
    for d in derivations:
        a, b = (out[arg].astype(float) for arg in d["args"])
        if d["op"] == "ratio":
            out[d["name"]] = np.where(b != 0, a / b.where(b != 0, 1.0), np.nan)
        else:
            out[d["name"]] = OPS[d["op"]](a, b)
    return out
