"""The ``personal_data`` section of ``config/gateway.yaml`` (see docs/auditors.md)."""

from __future__ import annotations

from typing import Any

_key_source: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "env": {"type": "string", "minLength": 1},
        "file": {"type": "string", "minLength": 1},
    },
    "minProperties": 1,
    "maxProperties": 1,
}

#: JSON Schema of the ``personal_data`` settings.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "master_keys": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id"],
                "properties": {
                    "id": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
                    "env": {"type": "string", "minLength": 1},
                    "file": {"type": "string", "minLength": 1},
                },
                "minProperties": 2,
                "maxProperties": 2,
            },
        },
        "subject_hash_key": {"anyOf": [{"type": "null"}, _key_source]},
        "subject_field": {"type": ["string", "null"]},
        "subject_fields": {"type": "object", "additionalProperties": {"type": "string"}},
        "retention_days": {"type": ["integer", "null"], "minimum": 1},
        "key_cache_size": {"type": "integer", "minimum": 0},
        "key_cache_seconds": {"type": "number", "minimum": 0},
    },
}

DEFAULTS: dict[str, Any] = {
    "master_keys": [],
    "subject_hash_key": None,
    "subject_field": None,
    "subject_fields": {},
    "retention_days": None,
    "key_cache_size": 10000,
    "key_cache_seconds": 60,
}
