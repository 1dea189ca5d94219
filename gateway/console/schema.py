"""The ``console`` section of the gateway configuration (checked at start)."""

from __future__ import annotations

from typing import Any

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "enabled": {"type": "boolean"},
        # Environment variable holding the cookie's signing key (gateway.console.cookie).
        "secret_key_env": {"type": ["string", "null"]},
        # Mark the cookie Secure on every response, not only on requests that came over TLS.
        "secure_cookies": {"type": "boolean"},
        "idle_timeout_minutes": {"type": "number", "exclusiveMinimum": 0},
        "absolute_timeout_hours": {"type": "number", "exclusiveMinimum": 0},
    },
}
