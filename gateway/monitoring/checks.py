"""Findings: a statistic compared with its configured ``warn``/``alert`` levels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SEVERITIES = ("ok", "warn", "alert")


@dataclass(frozen=True)
class Finding:
    """A statistic past a level: what, on which feature or group, and how far."""

    subject: str  # a feature, "score", a protected attribute's group, or "model"
    statistic: str
    value: float
    threshold: float
    severity: str  # warn | alert

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "statistic": self.statistic,
            "value": round(self.value, 6),
            "threshold": self.threshold,
            "severity": self.severity,
        }


def grade(
    subject: str,
    statistic: str,
    value: float | None,
    levels: Mapping[str, float | None] | None,
    *,
    below: bool = False,
) -> Finding | None:
    """A finding if ``value`` reaches a level (``below``: if it falls under it)."""
    if value is None or not levels:
        return None
    for severity in ("alert", "warn"):
        threshold = levels.get(severity)
        if threshold is None:
            continue
        if (value < threshold) if below else (value >= threshold):
            return Finding(subject, statistic, float(value), float(threshold), severity)
    return None


def worst(findings: list[Finding]) -> str:
    """The worst severity among ``findings`` (``ok`` if none)."""
    return max((f.severity for f in findings), key=SEVERITIES.index, default="ok")
