"""Performance of a version on the decisions whose loan outcome is known.

AUC, KS statistic and Brier score of the probability of default against the recorded
outcomes (``loan_outcomes``: defaulted = bad), the bad rate and calibration (mean
predicted vs observed default rate) per score band, the bands being the training
score's deciles, and the drop from the training holdout's figures
(``metadata["metrics"]``). Thresholds: ``monitoring.performance``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gateway.monitoring import stats
from gateway.monitoring.checks import Finding, grade, worst
from gateway.monitoring.layout import VersionLayout


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def performance_results(
    layout: VersionLayout,
    pairs: Sequence[tuple[float, int]],
    rows: int,
    thresholds: Mapping[str, Any],
) -> tuple[dict[str, Any], list[Finding]]:
    """The performance report of a window from its (probability, defaulted) pairs."""
    p = np.array([x for x, _ in pairs], dtype=float)
    bad = np.array([y for _, y in pairs], dtype=float)
    train = layout.metrics
    out: dict[str, Any] = {
        "rows": rows,
        "outcomes": len(pairs),
        "min_outcomes": thresholds["min_outcomes"],
        "bad_rate": _r(bad.mean()) if len(bad) else None,
        "auc": _r(stats.auc(p, bad)),
        "ks": _r(stats.ks_separation(p, bad)),
        "brier": _r(stats.brier(p, bad)),
        "training": {k: train.get(k) for k in ("auc", "ks", "brier", "holdout_default_rate")},
        "bands": _bands(layout, p, bad),
    }
    findings: list[Finding] = []
    if len(pairs) >= thresholds["min_outcomes"]:
        for name, key, levels in (
            ("auc_drop", "auc", thresholds["auc_drop"]),
            ("ks_drop", "ks", thresholds["ks_drop"]),
        ):
            if out[key] is not None and isinstance(train.get(key), int | float):
                out[name] = _r(float(train[key]) - out[key])
                found = grade("model", name, out[name], levels)
                findings.extend([found] if found else [])
        if out["brier"] is not None and isinstance(train.get("brier"), int | float):
            out["brier_rise"] = _r(out["brier"] - float(train["brier"]))
            found = grade("model", "brier_rise", out["brier_rise"], thresholds["brier_rise"])
            findings.extend([found] if found else [])
    else:
        out["note"] = "too few outcomes to grade"
    out["status"] = worst(findings)
    out["findings"] = [f.as_dict() for f in findings]
    return out, findings


def _bands(layout: VersionLayout, p: np.ndarray, bad: np.ndarray) -> list[dict[str, Any]]:
    """Per training-score decile: count, bad rate, mean predicted (calibration)."""
    edges = [] if layout.score is None else list(layout.score.edges)
    band = np.array([bisect_left(edges, x) for x in p], dtype=np.int64)
    out = []
    for i in range(len(edges) + 1):
        mask = band == i
        n = int(mask.sum())
        out.append(
            {
                "band": i,
                "upper": edges[i] if i < len(edges) else None,
                "count": n,
                "bad_rate": _r(bad[mask].mean()) if n else None,
                "mean_probability": _r(p[mask].mean()) if n else None,
            }
        )
    return out
