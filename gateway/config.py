"""Gateway configuration: ``config/gateway.yaml``, environment overrides, validation.

Precedence, lowest first: the YAML file (``LOANGATE_CONFIG`` or ``config/gateway.yaml``),
``LOANGATE_<SECTION>__<KEY>`` environment variables, then the mapping handed to
:func:`gateway.create_app`. The result is checked against :data:`GATEWAY_SCHEMA`
here; each pipeline component's own settings are checked against the component's
schema when the pipelines are built. Either failure refuses to start with a
:class:`~gateway.errors.ConfigError` that names the offending key.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from gateway.console.schema import SCHEMA as CONSOLE_SCHEMA
from gateway.crm.schema import WRITEBACK_SCHEMA
from gateway.errors import ConfigError
from gateway.monitoring.schema import SCHEMA as MONITORING_SCHEMA
from gateway.outbound.schema import CONNECTIONS_SCHEMA
from gateway.personal.schema import SCHEMA as PERSONAL_DATA_SCHEMA
from gateway.rate_limits import SCHEMA as RATE_LIMITS_SCHEMA

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "config" / "gateway.yaml"
ENV_PREFIX = "LOANGATE_"
#: Environment variables with the prefix that are switches, not config overrides.
NON_CONFIG_ENV = {"CONFIG", "INSTANCE", "DISABLE_PLUGIN_AUTOLOAD", "BLOCK_PLUGINS"}

_component: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {"name": {"type": "string"}, "config": {"type": "object"}},
}
#: One shadow model of a pipeline: a stage to follow, or a fixed version (gateway.shadow).
_shadow: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["model"],
    "properties": {
        "model": {"type": "string"},
        "stage": {"enum": ["candidate", "challenger", "champion"]},
        "version": {"type": "integer", "minimum": 1},
        "label": {"type": "string", "maxLength": 100},
    },
    "not": {"required": ["stage", "version"]},
}
_enricher = copy.deepcopy(_component)
_enricher["properties"]["on_error"] = {"enum": ["fail", "skip", "refer"]}

GATEWAY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["pipelines"],
    "properties": {
        "server": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "max_body_bytes": {"type": "integer", "minimum": 1024},
                "workers": {"type": ["integer", "null"], "minimum": 1},
                "threads": {"type": "integer", "minimum": 1, "maximum": 64},
                "bind": {"type": "string"},
                "timeout_seconds": {"type": "number", "exclusiveMinimum": 0},
                "graceful_timeout_seconds": {"type": "number", "minimum": 0},
                "trusted_proxies": {"type": "integer", "minimum": 0, "maximum": 5},
            },
        },
        "database": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "url": {"type": ["string", "null"]},
                "sqlite_synchronous": {"enum": ["FULL", "NORMAL", "EXTRA"]},
                "pool_size": {"type": "integer", "minimum": 1},
                "retry_after_seconds": {"type": "integer", "minimum": 0},
            },
        },
        "logging": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"level": {"enum": ["DEBUG", "INFO", "WARNING", "ERROR"]}},
        },
        "models": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "dir": {"type": ["string", "null"]},
                # how often each server process looks for a new version at a followed stage
                "refresh_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 300},
            },
        },
        "integrity": {  # tamper evidence (gateway.integrity)
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "seal_interval_seconds": {"type": "number", "exclusiveMinimum": 0},
                "late_after_seconds": {"type": "number", "exclusiveMinimum": 0},
                "batch": {"type": "integer", "minimum": 1, "maximum": 100000},
            },
        },
        "batch": {  # batch files uploaded over HTTP (gateway.batch.jobs)
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "max_upload_bytes": {"type": "integer", "minimum": 1024},
                "lease_seconds": {"type": "number", "minimum": 1},
                "chunk_size": {"type": "integer", "minimum": 1, "maximum": 1000000},
                "dir": {"type": ["string", "null"]},
            },
        },
        "metrics": {  # Prometheus exposition at /metrics (gateway.metrics)
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "bearer_token_env": {"type": ["string", "null"]},
            },
        },
        "auth": {"type": "object"},  # checked in detail by gateway.auth
        "notices": {"type": "object"},  # checked in detail by gateway.notices
        "personal_data": PERSONAL_DATA_SCHEMA,  # keys, subjects, retention (gateway.personal)
        "connections": CONNECTIONS_SCHEMA,  # named outgoing connections (gateway.outbound)
        "crm_writeback": WRITEBACK_SCHEMA,  # decisions written back to the CRM (gateway.crm)
        "monitoring": MONITORING_SCHEMA,  # drift, performance, fairness (gateway.monitoring)
        "rate_limits": RATE_LIMITS_SCHEMA,  # per-client request rates (gateway.rate_limits)
        "console": CONSOLE_SCHEMA,  # the auditor console (gateway.console)
        "events": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "queue_size": {"type": "integer", "minimum": 1},
                "budget_ms": {"type": "number", "exclusiveMinimum": 0},
            },
        },
        "pipelines": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": "^[a-z0-9][a-z0-9-]{0,62}$"},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["adapters", "scorer", "policy"],
                "properties": {
                    "description": {"type": "string"},
                    # a name, or {name, config} for an adapter with settings (e.g. a mapping)
                    "adapters": {
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, _component]},
                        "minItems": 1,
                    },
                    "validators": {"type": "array", "items": _component},
                    "enrichers": {"type": "array", "items": _enricher},
                    "scorer": _component,
                    "explainers": {"type": "array", "items": _component},
                    "policy": _component,
                    # challengers scoring off the response path (gateway.shadow)
                    "shadow": {"type": "array", "items": _shadow, "maxItems": 4},
                },
            },
        },
    },
}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``override``, recursively for nested mappings."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Nested overrides from ``LOANGATE_SECTION__KEY=value`` variables."""
    overrides: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        if rest in NON_CONFIG_ENV or "__" not in rest:
            continue
        path = [part.lower() for part in rest.split("__")]
        try:
            value = yaml.safe_load(raw) if raw else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{name}: not a valid value ({exc.__class__.__name__})") from exc
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return overrides


def format_path(path: Any) -> str:
    """``['pipelines', 'credit-risk', 'scorer']`` -> ``pipelines.credit-risk.scorer``."""
    return ".".join(str(p) for p in path) or "(top level)"


def validate(config: Mapping[str, Any], schema: Mapping[str, Any], where: str = "") -> None:
    """Raise :class:`ConfigError` naming the first key of ``config`` that breaks ``schema``."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        location = format_path(list(err.absolute_path))
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}{location}: {err.message}")


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], Path]:
    """The validated configuration and the folder its relative paths resolve against."""
    environ = os.environ if environ is None else environ
    file = Path(path or environ.get(f"{ENV_PREFIX}CONFIG") or DEFAULT_CONFIG_FILE)
    try:
        loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: invalid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"{file}: the top level must be a mapping")
    config = deep_merge(loaded, env_overrides(environ))
    if overrides:
        config = deep_merge(config, overrides)
    validate(config, GATEWAY_SCHEMA, where=str(file.name))
    return config, file.resolve().parent


def load_yaml_file(path: Path, what: str) -> dict[str, Any]:
    """A YAML mapping from ``path``; a :class:`ConfigError` naming ``what`` otherwise."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what}: invalid YAML in {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{what}: {path} must hold a mapping")
    return data
