"""The application factory: reads as the table of contents of the gateway."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import structlog
from flask import Flask, Response
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway import auth, console, db, logs, metrics, monitoring, rate_limits, replay
from gateway.access_trail import AccessTrail
from gateway.api import audit as audit_api
from gateway.api import batches as batches_api
from gateway.api import comparisons as comparisons_api
from gateway.api import decisions as decisions_api
from gateway.api import models as models_api
from gateway.api import notices as notices_api
from gateway.api import openapi as openapi_api
from gateway.api import ops as ops_api
from gateway.api import outcomes as outcomes_api
from gateway.api import reviews as reviews_api
from gateway.components import Services
from gateway.config import PROJECT_ROOT, load_config
from gateway.crm import writeback as crm_writeback
from gateway.decision_log import DecisionLog, LogUnavailable
from gateway.decisions import DecisionService
from gateway.errors import Problem, log_unavailable
from gateway.events import EventDispatcher
from gateway.http import problem_response
from gateway.integrity import api as integrity_api
from gateway.monitoring import api as monitoring_api
from gateway.notices import NoticeRenderer
from gateway.outbound.connections import build_connections
from gateway.outcomes import OutcomeLog
from gateway.personal import PersonalData
from gateway.pipeline import build_pipelines
from gateway.plugin_manager import collect_components, describe_plugins, make_plugin_manager
from gateway.reason_index import reason_rows
from gateway.registry import ModelRegistry
from gateway.review_claims import ReviewClaims
from gateway.reviews import ReviewLog
from gateway.shadow import ShadowRunner
from gateway.state import GatewayState

log = structlog.get_logger(__name__)


def default_instance_path() -> Path:
    """``LOANGATE_INSTANCE`` or the project's ``instance/`` folder."""
    return Path(os.environ.get("LOANGATE_INSTANCE") or PROJECT_ROOT / "instance").resolve()


def database_url(config: Mapping[str, Any], instance_path: Path) -> str:
    """The configured database URL, or SQLite in the instance folder."""
    return config["database"].get("url") or f"sqlite:///{instance_path / 'loangate.db'}"


def create_app(
    config: Mapping[str, Any] | None = None,
    *,
    plugins: Iterable[object] = (),
    instance_path: str | Path | None = None,
) -> Flask:
    """Build the gateway: config, logs, database, plugins, pipelines, auth, API.

    ``config`` overrides keys of ``config/gateway.yaml`` (after environment
    overrides); ``plugins`` are registered beside the entry-point plugins.
    """
    state = open_state(config, instance_path)
    settings, instance, engine = state.config, state.instance_path, state.engine
    app = Flask("gateway", instance_path=str(instance))
    app.config["MAX_CONTENT_LENGTH"] = settings["server"]["max_body_bytes"]
    proxies = settings["server"].get("trusted_proxies", 0)
    if proxies:  # behind TLS-terminating proxies: trust their X-Forwarded-* headers
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)  # type: ignore[method-assign]
    app.extensions["loangate"] = state

    pm = make_plugin_manager(plugins)
    catalog = collect_components(pm)
    registry = ModelRegistry(engine, models_dir(state))
    connections = build_connections(settings.get("connections") or {}, state.config_dir)
    services = Services(
        config_dir=state.config_dir,
        instance_path=instance,
        registry=registry,
        connections=connections,
        engine=engine,
    )
    pipelines = build_pipelines(settings, catalog, services)
    # No model may read what a pipeline classes as protected (checked at registration).
    registry.protected = frozenset().union(
        *(v.protected_fields() for p in pipelines.values() for v in p.validators)
    )
    decision_log = DecisionLog(engine, companions=[reason_rows])  # reason-code index
    state.extras["crm_writeback"] = crm_writeback.install(settings, connections, decision_log)
    # Personal values are sealed per applicant before storage (docs/auditors.md).
    personal = PersonalData.from_config(settings, instance, state.config_dir, engine, pipelines)
    personal.attach(decision_log)  # subject index (and own-subject keys) with each decision
    # Binned features per decision, for drift, performance and fairness runs.
    monitor = monitoring.install(settings, decision_log, registry, pipelines, personal, pm, app)
    dbs = settings["database"]
    events = EventDispatcher(pm, **settings["events"], app=app)
    state.extras.update(
        plugin_manager=pm,
        plugins=describe_plugins(pm, catalog),
        registry=registry,
        connections=connections,
        pipelines=pipelines,
        decision_log=decision_log,
        events=events,
        personal_data=personal,
        decisions=DecisionService(
            pipelines,
            decision_log,
            events,
            dbs["retry_after_seconds"],
            personal=personal,
            shadows=ShadowRunner(engine),
        ),
        reviews=ReviewLog(engine),
        review_claims=ReviewClaims(engine),
        access_trail=AccessTrail(engine),
        outcomes=OutcomeLog(engine),
        notices=NoticeRenderer(settings.get("notices"), state.config_dir),
        monitor=monitor,
    )
    replay.init_app(app, catalog, services)  # records policy versions; refuses a silent change

    logs.init_app(app)
    metrics.init_app(app)
    auth.init_app(app)
    rate_limits.init_app(app)  # per-client budgets, applied once a caller is authenticated
    app.register_blueprint(ops_api.bp)
    app.register_blueprint(decisions_api.bp)
    app.register_blueprint(models_api.bp)
    app.register_blueprint(comparisons_api.bp)
    app.register_blueprint(reviews_api.bp)
    app.register_blueprint(outcomes_api.bp)
    app.register_blueprint(notices_api.bp)
    app.register_blueprint(openapi_api.bp)
    app.register_blueprint(integrity_api.bp)
    app.register_blueprint(audit_api.bp)
    app.register_blueprint(batches_api.bp)
    app.register_blueprint(monitoring_api.bp)
    console.init_app(app)  # the auditor console, at /console (docs/console.md)
    for blueprints in pm.hook.register_blueprints():
        for blueprint in blueprints or ():
            app.register_blueprint(blueprint)
    _register_error_handlers(app)
    log.info("gateway_ready", pipelines=sorted(pipelines), plugins=len(state.extras["plugins"]))
    return app


def open_state(
    config: Mapping[str, Any] | None = None, instance_path: str | Path | None = None
) -> GatewayState:
    """Configuration, instance folder, logging and database engine: what every entry
    point (the app, the CLI) shares before anything else is built."""
    settings, config_dir = load_config(overrides=config)
    settings = _with_defaults(settings)
    instance = Path(instance_path).resolve() if instance_path else default_instance_path()
    instance.mkdir(parents=True, exist_ok=True)
    logs.configure_logging(settings["logging"]["level"])
    dbs = settings["database"]
    engine = db.make_engine(
        database_url(settings, instance),
        sqlite_synchronous=dbs["sqlite_synchronous"],
        pool_size=dbs["pool_size"],
    )
    return GatewayState(
        config=settings, engine=engine, instance_path=instance, config_dir=config_dir
    )


def models_dir(state: GatewayState) -> Path:
    """Where model artifacts live: ``models.dir`` or ``<instance>/models``."""
    return Path(state.config["models"].get("dir") or state.instance_path / "models")


def _with_defaults(settings: dict[str, Any]) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "server": {"max_body_bytes": 65536},
        "database": {
            "url": None,
            "sqlite_synchronous": "FULL",
            "pool_size": 5,
            "retry_after_seconds": 2,
        },
        "logging": {"level": "INFO"},
        "models": {"dir": None},
        "auth": {},
        "events": {"queue_size": 1000, "budget_ms": 200},
        "integrity": {
            "enabled": True,
            "seal_interval_seconds": 2.0,
            "late_after_seconds": 60.0,
            "batch": 10000,
        },
    }
    out = dict(settings)
    for section, values in defaults.items():
        out[section] = {**values, **(settings.get(section) or {})}
    return out


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(Problem)
    def _problem(problem: Problem) -> Response:
        return problem_response(problem)

    @app.errorhandler(LogUnavailable)
    def _log_unavailable(_exc: LogUnavailable) -> Response:
        retry = app.extensions["loangate"].config["database"]["retry_after_seconds"]
        return problem_response(log_unavailable(retry))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        code = exc.code or 500
        slug = (exc.name or "error").lower().replace(" ", "-")
        detail = (
            "The request body exceeds the size limit." if code == 413 else (exc.description or "")
        )
        problem = Problem(code, slug, exc.name or "Error", detail)
        if code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            problem.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return problem_response(problem)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled_error", error=type(exc).__name__)
        return problem_response(
            Problem(500, "internal-error", "Internal error", "An unexpected error occurred.")
        )
