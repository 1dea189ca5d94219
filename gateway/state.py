"""The gateway's per-app state, kept in ``app.extensions["loangate"]``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy import Engine


@dataclass
class GatewayState:
    """Everything a request handler needs that was built at start.

    ``config`` is the validated gateway configuration (``config/gateway.yaml`` with
    overrides); ``extras`` holds subsystem objects keyed by name (``auth``,
    ``pipelines``, ``decision_log``, ...), each set by that subsystem's ``init_app``.
    """

    config: dict[str, Any]
    engine: Engine
    instance_path: Path
    config_dir: Path
    extras: dict[str, Any] = field(default_factory=dict)


def gateway_state(app: Flask | None = None) -> GatewayState:
    """The state of ``app`` (default: the current app)."""
    state: GatewayState = (app or current_app).extensions["loangate"]
    return state
