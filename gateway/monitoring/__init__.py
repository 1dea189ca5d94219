"""Drift, performance and fairness monitoring of logged decisions (docs/monitoring.md).

- :mod:`.layout`: per model version, where each feature's bin goes and how it is binned;
- :mod:`.rows`: the ``decision_monitoring`` row written with each decision (a companion);
- :mod:`.queries`: the window's counts, aggregated in SQL;
- :mod:`.stats`, :mod:`.drift`, :mod:`.performance`, :mod:`.fairness`: the figures;
- :mod:`.runs`: stored runs; :mod:`.monitor`: a run end to end; :mod:`.alerts`: sinks;
- :mod:`.api`, :mod:`.cli`, :mod:`.report`: ``GET /v1/monitoring/*``, ``loangate monitor``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.decision_log import DecisionLog
from gateway.monitoring.alerts import AlertSinks
from gateway.monitoring.monitor import Monitor
from gateway.monitoring.rows import MonitoringRows, personal_opener
from gateway.monitoring.schema import settings as monitoring_settings


def install(
    config: Mapping[str, Any],
    decision_log: DecisionLog,
    registry: Any,
    pipelines: Mapping[str, Any],
    personal: Any = None,
    plugin_manager: Any = None,
    app: Any = None,
) -> Monitor:
    """Write a monitoring row with every decision (unless ``monitoring.enabled`` is false)
    and return the gateway's :class:`Monitor`."""
    settings = monitoring_settings(config)
    rows = MonitoringRows(registry, pipelines, personal_opener(personal) if personal else None)
    if settings["enabled"]:
        decision_log.companions.append(rows.companion)
    sinks = AlertSinks(settings, plugin_manager, app)
    return Monitor(decision_log.engine, rows, pipelines, settings, sinks)


__all__ = ["Monitor", "MonitoringRows", "install", "monitoring_settings"]
