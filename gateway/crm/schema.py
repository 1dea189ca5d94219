"""JSON Schema of the ``crm_writeback:`` section of the gateway configuration.

Pure data, so :mod:`gateway.config` can check the section without importing anything
that talks to a CRM.
"""

from __future__ import annotations

from typing import Any

#: What a CRM field can be filled with, from the decision record.
SOURCES = (
    "decision_id",
    "outcome",
    "status",
    "probability_of_default",
    "reason_codes",  # the reason codes, joined by ``reason_separator``
    "reason_texts",  # their texts, joined likewise
    "decided_at",
    "pipeline",
    "model",  # "<name> v<version>"
    "policy_version",
    "application_id",
)

WRITEBACK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["connection", "object"],
    "properties": {
        "enabled": {"type": "boolean", "description": "default true"},
        "connection": {
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9-]{0,62}$",
            "description": "a `type: rest` connection under `connections:`",
        },
        "object": {
            "type": "string",
            "pattern": "^[A-Za-z][A-Za-z0-9_]{0,99}$",
            "description": "the CRM object (sObject) of the records",
        },
        "api_version": {"type": "string", "pattern": "^v[0-9]{1,3}\\.[0-9]$"},
        "path": {
            "type": "string",
            "pattern": "^/",
            "description": "record path; {api_version}, {object} and {record_id} are filled in",
        },
        "adapters": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1},
            "description": "decisions from these adapters are written back (default salesforce)",
        },
        "statuses": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"enum": ["decided", "rejected", "error"]},
            "description": "record statuses written back (default decided, rejected)",
        },
        "fields": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": "^[A-Za-z][A-Za-z0-9_]{0,79}$"},
            "additionalProperties": {"enum": list(SOURCES)},
            "description": "CRM field name: what of the decision it receives",
        },
        "reason_separator": {"type": "string", "maxLength": 5},
        "delivery": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "in_server": {
                    "type": "boolean",
                    "description": "run a delivery thread in each server process (default true)",
                },
                "interval_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
                "batch": {"type": "integer", "minimum": 1, "maximum": 10000},
                "backoff_seconds": {"type": "number", "exclusiveMinimum": 0},
                "max_backoff_seconds": {"type": "number", "exclusiveMinimum": 0},
                "jitter": {"type": "number", "minimum": 0, "maximum": 1},
                "max_age_hours": {"type": "number", "exclusiveMinimum": 0},
                "lease_seconds": {"type": "number", "minimum": 1},
            },
        },
    },
}
