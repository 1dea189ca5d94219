"""Drift of a window of decisions against a version's training reference profile.

Per feature: PSI on the reference's decile bins (categories: on the known categories),
KS on the fine bins (numeric), Jensen-Shannon distance and chi-squared p-value
(categorical), and two signals of their own, the change of the null rate (missing or
imputed) and the rate of unseen categories or invalid values. The score's distribution
gets PSI and KS like a numeric feature. Thresholds: ``monitoring.drift``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gateway.monitoring import stats
from gateway.monitoring.checks import Finding, grade, worst
from gateway.monitoring.layout import (
    MISSING,
    NOT_COMPUTED,
    UNSEEN,
    FeatureLayout,
    VersionLayout,
    decile_counts,
)


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def numeric_drift(
    feature: FeatureLayout, counts: Mapping[int, int], thresholds: Mapping[str, Any]
) -> tuple[dict[str, Any], list[Finding]]:
    """Drift figures of a numeric feature from its window counts per fine bin."""
    fine = np.zeros(len(feature.fine_edges) + 1, dtype=np.int64)
    for b, n in counts.items():
        if 0 <= b < len(fine):
            fine[b] += n
    eps = thresholds["epsilon"]
    present = int(fine.sum())
    figures: dict[str, Any] = {"type": "numeric", **_rates(feature, counts)}
    if present and sum(feature.ref_counts):
        window_deciles = decile_counts(feature, fine)
        figures["psi"] = _r(stats.psi(feature.ref_counts, window_deciles, eps))
        figures["ks"] = _r(stats.ks_binned(feature.ref_fine_counts, fine))
        figures["reference_shares"] = [_r(x) for x in stats.shares(feature.ref_counts)]
        figures["window_shares"] = [_r(x) for x in stats.shares(window_deciles)]
    found = [
        grade(feature.name, "psi", figures.get("psi"), thresholds["psi"]),
        grade(feature.name, "ks", figures.get("ks"), thresholds["ks"]),
        *_rate_findings(feature.name, figures, thresholds),
    ]
    return figures, [f for f in found if f is not None]


def categorical_drift(
    feature: FeatureLayout, counts: Mapping[int, int], thresholds: Mapping[str, Any]
) -> tuple[dict[str, Any], list[Finding]]:
    """Drift figures of a categorical feature from its window counts per category."""
    window = np.array([counts.get(i, 0) for i in range(len(feature.categories))], dtype=np.int64)
    eps = thresholds["epsilon"]
    figures: dict[str, Any] = {"type": "categorical", **_rates(feature, counts)}
    if window.sum() and sum(feature.ref_counts):
        figures["psi"] = _r(stats.psi(feature.ref_counts, window, eps))
        figures["js"] = _r(stats.js_distance(feature.ref_counts, window))
        figures["chi2_p"] = _r(stats.chi2_pvalue(feature.ref_counts, window, eps))
        figures["categories"] = list(feature.categories)
        figures["reference_shares"] = [_r(x) for x in stats.shares(feature.ref_counts)]
        figures["window_shares"] = [_r(x) for x in stats.shares(window)]
    chi2_level = thresholds.get("chi2_p")
    found = [
        grade(feature.name, "psi", figures.get("psi"), thresholds["psi"]),
        grade(feature.name, "js", figures.get("js"), thresholds["js"]),
        grade(
            feature.name,
            "chi2_p",
            figures.get("chi2_p"),
            {"alert": chi2_level} if chi2_level else None,
            below=True,
        ),
        *_rate_findings(feature.name, figures, thresholds),
    ]
    return figures, [f for f in found if f is not None]


def _rates(feature: FeatureLayout, counts: Mapping[int, int]) -> dict[str, Any]:
    """Rows considered, null rate (and its change from training), unseen rate."""
    considered = sum(n for b, n in counts.items() if b != NOT_COMPUTED)
    missing, unseen = counts.get(MISSING, 0), counts.get(UNSEEN, 0)
    null_rate = missing / considered if considered else None
    return {
        "rows": considered,
        "not_computed": counts.get(NOT_COMPUTED, 0),
        "null_rate": _r(null_rate),
        "reference_null_rate": _r(feature.ref_null_rate),
        "null_rate_delta": _r(null_rate - feature.ref_null_rate) if null_rate is not None else None,
        "unseen_rate": _r(unseen / considered) if considered else None,
    }


def _rate_findings(
    name: str, figures: Mapping[str, Any], thresholds: Mapping[str, Any]
) -> list[Finding | None]:
    return [
        grade(
            name, "null_rate_delta", figures.get("null_rate_delta"), thresholds["null_rate_delta"]
        ),
        grade(name, "unseen_rate", figures.get("unseen_rate"), thresholds["unseen_rate"]),
    ]


def drift_results(
    layout: VersionLayout,
    counts: Mapping[str, Mapping[int, int]],
    rows: int,
    thresholds: Mapping[str, Any],
) -> tuple[dict[str, Any], list[Finding]]:
    """The drift report of a window (``counts`` per slot column and ``score_bin``)."""
    features: list[dict[str, Any]] = []
    findings: list[Finding] = []
    for feature in layout.features:
        window = counts.get(feature.column, {})
        if feature.kind == "numeric":
            figures, found = numeric_drift(feature, window, thresholds)
        else:
            figures, found = categorical_drift(feature, window, thresholds)
        features.append(
            {
                "feature": feature.name,
                **figures,
                "status": worst(found),
                "findings": [f.as_dict() for f in found],
            }
        )
        findings.extend(found)
    score: dict[str, Any] | None = None
    if layout.score is not None:
        figures, found = numeric_drift(layout.score, counts.get("score_bin", {}), thresholds)
        # the score has no null rate of its own: a rejected request has no score
        found = [f for f in found if f.statistic in ("psi", "ks")]
        score = {
            "feature": "score",
            "rows": figures["rows"],
            "psi": figures.get("psi"),
            "ks": figures.get("ks"),
            "reference_shares": figures.get("reference_shares"),
            "window_shares": figures.get("window_shares"),
            "status": worst(found),
            "findings": [f.as_dict() for f in found],
        }
        findings.extend(found)
    drifted = sorted({f.subject for f in findings if f.severity == "alert"})
    return {
        "rows": rows,
        "features": features,
        "score": score,
        "drifted": drifted,
        "not_monitored": list(layout.skipped),
        "status": worst(findings),
    }, findings
