"""JSON Schema of the ``connections:`` section of the gateway configuration (SOAP, REST).

Pure data, so :mod:`gateway.config` can check the section without importing zeep.
"""

from __future__ import annotations

from typing import Any

_positive = {"type": "number", "exclusiveMinimum": 0}

SOAP_CONNECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["wsdl"],
    "properties": {
        "type": {"enum": ["soap", "rest"], "description": "soap (the default) or rest"},
        "description": {"type": "string"},
        "wsdl": {
            "type": "string",
            "minLength": 1,
            "description": "a file (relative to the config folder) or an http(s) URL",
        },
        "address": {"type": "string", "pattern": "^https?://", "description": "endpoint URL"},
        "service": {"type": "string", "description": "WSDL service name (default: the first)"},
        "port": {"type": "string", "description": "WSDL port name (default: the first)"},
        "auth": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type"],
            "properties": {
                "type": {"enum": ["none", "basic", "wsse-username"]},
                "username": {"type": "string", "minLength": 1},
                "password_env": {
                    "type": "string",
                    "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
                    "description": "name of the environment variable holding the password",
                },
                "digest": {"type": "boolean", "description": "wsse-username: PasswordDigest"},
            },
        },
        "ca_file": {"type": "string", "description": "CA bundle for https (default: system)"},
        "timeout_ms": {**_positive, "maximum": 600000, "description": "per attempt"},
        "wsdl_timeout_ms": {**_positive, "maximum": 600000},
        "retries": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "max_attempts": {"type": "integer", "minimum": 1, "maximum": 10},
                "backoff_ms": {"type": "number", "minimum": 0},
                "max_backoff_ms": {"type": "number", "minimum": 0},
                "jitter": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
        "breaker": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "failure_threshold": {"type": "integer", "minimum": 1},
                "open_seconds": _positive,
                "half_open_probes": {"type": "integer", "minimum": 1},
            },
        },
        "cache": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "ttl_seconds": {"type": "number", "minimum": 0},
                "max_entries": {"type": "integer", "minimum": 1},
            },
        },
        "max_in_flight": {"type": "integer", "minimum": 1, "maximum": 256},
        "max_response_bytes": {"type": "integer", "minimum": 1024},
        "correlation": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "http_header": {"type": "string", "pattern": "^[A-Za-z0-9-]+$"},
                "soap_header": {"type": "boolean"},
            },
        },
    },
}

_retries = SOAP_CONNECTION_SCHEMA["properties"]["retries"]
_breaker = SOAP_CONNECTION_SCHEMA["properties"]["breaker"]

REST_CONNECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "base_url"],
    "properties": {
        "type": {"const": "rest"},
        "description": {"type": "string"},
        "base_url": {"type": "string", "pattern": "^https?://[^/?#]+", "description": "API root"},
        "auth": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type"],
            "properties": {
                "type": {"enum": ["none", "oauth2-client-credentials"]},
                "token_url": {"type": "string", "pattern": "^https?://"},
                "client_id_env": {
                    "type": "string",
                    "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
                    "description": "name of the environment variable holding the client id",
                },
                "client_secret_env": {
                    "type": "string",
                    "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
                    "description": "name of the environment variable holding the secret",
                },
                "scope": {"type": "string"},
            },
        },
        "ca_file": {"type": "string", "description": "CA bundle for https (default: system)"},
        "timeout_ms": {**_positive, "maximum": 600000, "description": "per attempt"},
        "retries": _retries,
        "breaker": _breaker,
        "max_response_bytes": {"type": "integer", "minimum": 1024},
        "correlation": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"http_header": {"type": "string", "pattern": "^[A-Za-z0-9-]+$"}},
        },
    },
}

#: One connection: ``type: rest`` picks the REST schema, anything else the SOAP one.
CONNECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "if": {"required": ["type"], "properties": {"type": {"const": "rest"}}},
    "then": REST_CONNECTION_SCHEMA,
    "else": SOAP_CONNECTION_SCHEMA,
}

CONNECTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "propertyNames": {"pattern": "^[a-z0-9][a-z0-9-]{0,62}$"},
    "additionalProperties": CONNECTION_SCHEMA,
}
