"""Approval rates across protected groups, and the four-fifths rule.

Protected attributes are kept in the decision's input though never given to the model;
each decision's group codes are in ``g0`` .. of its monitoring row. Per attribute, the
approval rate of each group (approved among approved, referred and declined), and its
ratio to the highest group's rate (the adverse impact ratio). A ratio below
``monitoring.fairness.ratio`` (0.8, the four-fifths rule of the US Uniform Guidelines)
is an alert when both groups hold at least ``min_group_size`` decisions; smaller groups
are reported, never graded. Unknown and missing values are reported apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.monitoring.checks import Finding, worst
from gateway.monitoring.layout import MISSING, GroupLayout, group_column

DECIDED = ("approve", "refer", "decline")


def fairness_results(
    groups: GroupLayout,
    counts: Mapping[str, Mapping[int, Mapping[str, int]]],
    rows: int,
    thresholds: Mapping[str, Any],
) -> tuple[dict[str, Any], list[Finding]]:
    """The fairness report of a window from its outcome counts per group."""
    min_size, limit = thresholds["min_group_size"], thresholds["ratio"]
    attributes: list[dict[str, Any]] = []
    findings: list[Finding] = []
    for slot, name in enumerate(groups.fields):
        per_code = counts.get(group_column(slot), {})
        items: list[dict[str, Any]] = []
        for code, outcomes in sorted(per_code.items()):
            decided = sum(outcomes.get(o, 0) for o in DECIDED)
            approved = outcomes.get("approve", 0)
            label = (
                groups.values[slot][code]
                if 0 <= code < len(groups.values[slot])
                else ("(missing)" if code == MISSING else "(unknown)")
            )
            items.append(
                {
                    "group": label,
                    "known": code >= 0,
                    "decided": decided,
                    "approved": approved,
                    "approval_rate": round(approved / decided, 6) if decided else None,
                }
            )
        graded = [g for g in items if g["known"] and g["decided"] >= min_size]
        best: float | None = max((float(g["approval_rate"]) for g in graded), default=None)
        for g in items:
            rate = g["approval_rate"]
            g["ratio"] = round(rate / best, 6) if best and rate is not None else None
            g["graded"] = g in graded
            if g["graded"] and g["ratio"] is not None and g["ratio"] < limit:
                findings.append(
                    Finding(f"{name}={g['group']}", "approval_ratio", g["ratio"], limit, "alert")
                )
        attributes.append({"attribute": name, "groups": items, "highest_rate": best})
    return {
        "rows": rows,
        "min_group_size": min_size,
        "ratio_threshold": limit,
        "attributes": attributes,
        "status": worst(findings),
        "findings": [f.as_dict() for f in findings],
    }, findings
