"""The loangate plugin contract: every hook a plugin can implement.

Plugins are modules or objects registered under the ``loangate`` entry-point group
(first-party ones included). Implement a hook by decorating a function of the same
name with :data:`gateway.hookimpl`; an implementation may take any subset of the
arguments. Registration hooks are called once, when the gateway starts; event hooks
after the fact, off the response path, within a time budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from flask import Blueprint, Flask

    from gateway.components import (
        Adapter,
        Enricher,
        Explainer,
        Policy,
        Scorer,
        Validator,
    )

hookspec = pluggy.HookspecMarker("loangate")
hookimpl = pluggy.HookimplMarker("loangate")


@hookspec
def register_adapters() -> list[type[Adapter]]:  # type: ignore[empty-body]
    """Contribute inbound adapters (classes subclassing :class:`gateway.components.Adapter`).

    Called once at start. Return a list of classes; their ``name`` is what a
    pipeline's ``adapters`` list refers to.

    Example::

        @hookimpl
        def register_adapters():
            return [FixedWidthAdapter]
    """


@hookspec
def register_validators() -> list[type[Validator]]:  # type: ignore[empty-body]
    """Contribute validators (subclasses of :class:`gateway.components.Validator`).

    Called once at start; return a list of classes.
    """


@hookspec
def register_enrichers() -> list[type[Enricher]]:  # type: ignore[empty-body]
    """Contribute feature enrichers (subclasses of :class:`gateway.components.Enricher`).

    Called once at start; return a list of classes.
    """


@hookspec
def register_scorers() -> list[type[Scorer]]:  # type: ignore[empty-body]
    """Contribute scorers (subclasses of :class:`gateway.components.Scorer`).

    Called once at start; return a list of classes.
    """


@hookspec
def register_explainers() -> list[type[Explainer]]:  # type: ignore[empty-body]
    """Contribute explainers (subclasses of :class:`gateway.components.Explainer`).

    Called once at start; return a list of classes.
    """


@hookspec
def register_policies() -> list[type[Policy]]:  # type: ignore[empty-body]
    """Contribute decision policies (subclasses of :class:`gateway.components.Policy`).

    Called once at start; return a list of classes.
    """


@hookspec
def register_blueprints() -> list[Blueprint]:  # type: ignore[empty-body]
    """Contribute Flask blueprints (routes) to the gateway, e.g. an adapter's endpoint.

    Called once when the app is built; return a list of blueprints. Protect their
    routes with :func:`gateway.auth.require_scopes` and raise
    :class:`gateway.errors.Problem` for errors, like the gateway's own routes.

    Example::

        @hookimpl
        def register_blueprints():
            return [telex_bp]
    """


@hookspec
def register_openapi_paths() -> dict[str, Any]:  # type: ignore[empty-body]
    """Describe the routes of a plugin's blueprints in ``GET /openapi.json``.

    Called when the document is built; return OpenAPI 3.1 path items by path template
    (``{name}`` for a path parameter). They may refer to the gateway's schemas, e.g.
    ``#/components/schemas/Problem``, and to the ``bearer`` security scheme. A path the
    gateway documents itself keeps the gateway's description.

    Example::

        @hookimpl
        def register_openapi_paths():
            return {"/v1/pipelines/{pipeline}/telex": {"post": {...}}}
    """


@hookspec
def register_commands() -> list[click.Command]:  # type: ignore[empty-body]
    """Contribute commands to the ``loangate`` command line.

    Called once when the CLI starts; return a list of click commands or groups.

    Example::

        @hookimpl
        def register_commands():
            return [reconcile]
    """


@hookspec
def decision_logged(record: dict[str, Any], app: Flask) -> None:
    """Called after a decision record was durably committed.

    ``record`` is the decision document exactly as logged, parsed afresh for each
    plugin (changing it changes nothing); ``app`` is the gateway's Flask app. Runs on a
    background thread of the worker, never on the response path: an exception is logged
    and swallowed, a call longer than ``events.budget_ms`` is reported as slow, and when
    ``events.queue_size`` events are already waiting new ones are dropped (and counted)
    rather than delaying decisions. Return value is ignored.

    Example::

        @hookimpl
        def decision_logged(record):
            metrics.count(record["outcome"])
    """


@hookspec
def monitoring_alert(alert: Any, app: Flask | None) -> None:
    """Called for each alert of a drift, performance or fairness run (an alert sink).

    ``alert`` is a :class:`gateway.monitoring.alerts.Alert`: ``kind`` (drift, performance,
    fairness), ``pipeline``, ``model``, ``version``, ``subject`` (the feature, ``score``,
    ``model`` or ``<attribute>=<group>``), ``statistic``, ``value``, ``threshold``,
    ``severity`` and ``run_id``; it never holds a personal value. ``app`` is the gateway's
    Flask app. Runs in the monitoring run (``loangate monitor run``, from cron), after
    the run is stored and before the configured webhooks; an exception is logged and the
    other sinks still run. Return value is ignored.

    Example::

        @hookimpl
        def monitoring_alert(alert):
            pager.trigger(f"{alert.kind}: {alert.subject} {alert.statistic}={alert.value}")
    """
