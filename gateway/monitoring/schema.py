"""The ``monitoring`` section of ``gateway.yaml``: thresholds, windows, alert sinks.

Checked with the rest of the configuration when the gateway starts (:data:`SCHEMA`);
:func:`settings` fills in the defaults documented in ``docs/monitoring.md``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

_level = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "warn": {"type": ["number", "null"], "minimum": 0},
        "alert": {"type": ["number", "null"], "minimum": 0},
    },
}

_webhook = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url", "secret_env"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 63},
        "url": {"type": "string", "pattern": "^https?://"},
        "secret_env": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 60},
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 10},
        "backoff_ms": {"type": "number", "minimum": 0},
        "max_backoff_ms": {"type": "number", "minimum": 0},
    },
}

#: JSON Schema of the ``monitoring`` section.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "enabled": {"type": "boolean"},
        "window": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "last": {"type": "integer", "minimum": 1, "maximum": 100000000},
                "days": {"type": ["number", "null"], "exclusiveMinimum": 0},
            },
        },
        "min_rows": {"type": "integer", "minimum": 1},
        "drift": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "psi": _level,
                "ks": _level,
                "js": _level,
                "null_rate_delta": _level,
                "unseen_rate": _level,
                "chi2_p": {
                    "type": ["number", "null"],
                    "exclusiveMinimum": 0,
                    "maximum": 1,
                    "description": "alert when the chi-squared p-value is below (null: never)",
                },
                "epsilon": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.01},
                "sql": {"enum": ["auto", "lateral", "grouping_sets", "union_all"]},
            },
        },
        "performance": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "min_outcomes": {"type": "integer", "minimum": 1},
                "auc_drop": _level,
                "ks_drop": _level,
                "brier_rise": _level,
            },
        },
        "fairness": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "min_group_size": {"type": "integer", "minimum": 1},
                "ratio": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": 1,
                    "description": "alert when a group's approval rate over the highest is below",
                },
            },
        },
        "alerts": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "log": {"type": "boolean"},
                "min_severity": {"enum": ["warn", "alert"]},
                "webhooks": {"type": "array", "items": _webhook, "maxItems": 20},
            },
        },
    },
}

#: What an absent key means (docs/monitoring.md explains each threshold).
DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "window": {"last": 10000, "days": None},
    "min_rows": 500,
    "drift": {
        "psi": {"warn": 0.1, "alert": 0.2},
        "ks": {"warn": 0.05, "alert": 0.1},
        "js": {"warn": 0.05, "alert": 0.1},
        "null_rate_delta": {"warn": 0.02, "alert": 0.05},
        "unseen_rate": {"warn": 0.005, "alert": 0.01},
        "chi2_p": None,
        "epsilon": 0.0001,
        "sql": "auto",
    },
    "performance": {
        "min_outcomes": 200,
        "auc_drop": {"warn": 0.03, "alert": 0.05},
        "ks_drop": {"warn": 0.05, "alert": 0.1},
        "brier_rise": {"warn": 0.02, "alert": 0.05},
    },
    "fairness": {"min_group_size": 100, "ratio": 0.8},
    "alerts": {"log": True, "min_severity": "alert", "webhooks": []},
}

WEBHOOK_DEFAULTS: dict[str, Any] = {
    "timeout_seconds": 5.0,
    "max_attempts": 4,
    "backoff_ms": 500.0,
    "max_backoff_ms": 8000.0,
}


def _merge(base: Any, over: Any) -> Any:
    """``base`` with ``over``'s keys, nested mappings merged (a ``None`` value replaces)."""
    if isinstance(base, dict) and isinstance(over, Mapping):
        return {**base, **{k: _merge(base.get(k), v) for k, v in over.items()}}
    return copy.deepcopy(over)


def settings(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``monitoring`` section of ``config`` with every default filled in."""
    merged: dict[str, Any] = _merge(copy.deepcopy(DEFAULTS), (config or {}).get("monitoring") or {})
    merged["alerts"]["webhooks"] = [
        {**WEBHOOK_DEFAULTS, "name": f"webhook-{i + 1}", **hook}
        for i, hook in enumerate(merged["alerts"]["webhooks"] or [])
    ]
    return merged
