"""The ``console`` section of the gateway configuration (checked at start)."""

from __future__ import annotations

from typing import Any

from gateway.console.roles import ROLES

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
        # Single sign-on through OpenID Connect (gateway.console.sso_pages).
        "oidc": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "required": ["issuer", "client_id", "role_claim", "roles"],
            "properties": {
                "issuer": {"type": "string", "pattern": "^https?://"},
                "client_id": {"type": "string", "minLength": 1},
                "client_secret_env": {"type": ["string", "null"]},
                "scope": {"type": "string"},
                "role_claim": {"type": "string", "minLength": 1},
                "name_claim": {"type": "string", "minLength": 1},
                "roles": {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": {"enum": list(ROLES)},
                },
            },
        },
    },
}
