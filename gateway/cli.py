"""The ``loangate`` command line: serve, set up, and administer the gateway.

Commands share the gateway's configuration path (``config/gateway.yaml``,
``LOANGATE_*`` overrides, the instance folder) with the server.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from gateway.errors import ConfigError

DEMO_CLIENT_FILE = "demo-client.json"
#: Model kinds ``models train --kind`` offers (the trainers of :mod:`gateway.training`).
MODEL_KINDS = ("logistic", "scorecard", "hgb")
#: Extra demo models, one per other kind, for the commented pipelines of gateway.yaml.
DEMO_KIND_MODELS = {"german-credit-scorecard": "scorecard", "german-credit-hgb": "hgb"}
DEMO_SCOPES = (
    "decisions:create",
    "decisions:read",
    "models:admin",
    "batches:create",
    "monitoring:read",
)


def _state() -> Any:
    from gateway.app import open_state

    try:
        return open_state()
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from exc


@click.group()
@click.version_option(package_name="loangate")
def main() -> None:
    """loangate: governed credit decisions for legacy loan systems."""


# --- database -----------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply schema migrations (Alembic) up to the latest."""
    from gateway import db as database

    state = _state()
    database.upgrade(state.engine)
    click.echo("database schema is up to date")


# --- models -------------------------------------------------------------------


@main.group()
def models() -> None:
    """Model registry."""


@models.command("train")
@click.option("--name", default="german-credit", show_default=True, help="registered model name")
@click.option(
    "--kind",
    type=click.Choice(MODEL_KINDS),
    default="logistic",
    show_default=True,
    help="logistic regression, WoE scorecard with points, or gradient-boosted trees",
)
@click.option(
    "--stage",
    default="champion",
    show_default=True,
    type=click.Choice(["candidate", "challenger", "champion"]),
)
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="training CSV (default: the bundled German credit data)",
)
@click.option("--if-missing", is_flag=True, help="do nothing when a champion of NAME exists")
@click.option(
    "--reason-codes",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="reason-code table the version carries (default: config/reason_codes/german-credit.yaml)",
)
def models_train(
    name: str,
    kind: str,
    stage: str,
    data: Path | None,
    if_missing: bool,
    reason_codes: Path | None,
) -> None:
    """Train a model on the German credit data and register it as a new version."""
    from gateway.reason_codes import ProtectedReason

    try:
        click.echo(train_model(_state(), name, kind, stage, data, if_missing, reason_codes))
    except (ProtectedReason, ConfigError) as exc:
        raise click.ClickException(str(exc)) from exc


def train_model(
    state: Any,
    name: str,
    kind: str,
    stage: str,
    data: Path | None,
    if_missing: bool,
    reason_codes: Path | None = None,
) -> str:
    """Train and register a version (or not, with ``if_missing`` and a champion in place)."""
    from gateway.app import models_dir
    from gateway.registry import ModelNotFound, ModelRegistry
    from gateway.training import train_and_register

    registry = ModelRegistry(state.engine, models_dir(state))
    if if_missing:
        try:
            info = registry.get(name, stage="champion")
            return f"{name} v{info.version} is the champion"
        except ModelNotFound:
            pass
    info = train_and_register(
        registry,
        name=name,
        kind=kind,
        stage=stage,
        data_path=data,
        created_by=os.environ.get("USER", "cli"),
        reason_codes=reason_codes,
    )
    metrics = info.metadata.get("metrics", {})
    table = info.metadata.get("reason_codes", {}).get("label", "-")
    return (
        f"registered {info.name} v{info.version} ({info.kind}, stage {info.stage}) "
        f"sha256 {info.sha256[:12]} auc {metrics.get('auc', float('nan')):.3f} "
        f"brier {metrics.get('brier', float('nan')):.3f} reason codes {table}"
    )


@models.command("list")
@click.option("--name", default=None, help="only this model")
def models_list(name: str | None) -> None:
    """Registered model versions."""
    from gateway.app import models_dir
    from gateway.registry import ModelRegistry

    state = _state()
    for info in ModelRegistry(state.engine, models_dir(state)).list(name):
        click.echo(f"{info.name}\tv{info.version}\t{info.kind}\t{info.stage}\t{info.sha256[:12]}")


@models.command("promote")
@click.argument("name")
@click.argument("version", type=int)
@click.option(
    "--stage",
    default="champion",
    show_default=True,
    type=click.Choice(["candidate", "challenger", "champion", "archived"]),
)
@click.option("--reason", default=None, help="why (kept in the model's stage history)")
def models_promote(name: str, version: int, stage: str, reason: str | None) -> None:
    """Move VERSION of NAME to a stage; running servers follow within seconds."""
    from gateway.registry import ModelNotFound

    registry = _app_registry()
    try:
        info = registry.get(name, version=version)
        problems = (
            registry.followers.problems(registry.load(info), stage)
            if stage in ("champion", "challenger")
            else []
        )
        if problems:
            raise click.ClickException(
                f"{name} v{version} cannot be {stage}: " + "; ".join(problems)
            )
        info = registry.set_stage(name, version, stage, changed_by=_operator(), reason=reason)
    except ModelNotFound as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{info.name} v{info.version} is now {info.stage}")


@models.command("rollback")
@click.argument("name")
def models_rollback(name: str) -> None:
    """Make the champion before the current one of NAME the champion again."""
    from gateway.registry import ModelNotFound

    try:
        info = _app_registry().rollback(name, changed_by=_operator())
    except ModelNotFound as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{info.name} v{info.version} is the champion again")


@models.command("history")
@click.argument("name")
def models_history(name: str) -> None:
    """Every stage change of NAME's versions: when, version, from, to, who, why."""
    from gateway.app import models_dir
    from gateway.registry import ModelRegistry

    state = _state()
    events = ModelRegistry(state.engine, models_dir(state)).history(name)
    if not events:
        raise click.ClickException(f"no model named {name!r} is registered")
    for e in events:
        click.echo(
            f"{e['changed_at']}\tv{e['version']}\t{e['from_stage'] or '-'} -> {e['to_stage']}"
            f"\t{e['changed_by']}\t{e['reason'] or ''}"
        )


@models.command("retrain")
@click.argument("name")
@click.option("--pipeline", "pipeline_name", required=True, help="whose labelled decisions")
@click.option("--since", type=click.DateTime(), default=None, help="only decisions since")
@click.option("--min-rows", type=int, default=200, show_default=True)
@click.option("--kind", type=click.Choice(MODEL_KINDS), default=None, help="default: champion's")
def models_retrain(
    name: str, pipeline_name: str, since: Any, min_rows: int, kind: str | None
) -> None:
    """Train NAME on recent labelled decisions; register it as challenger (never champion)."""
    from datetime import UTC

    from gateway.app import create_app
    from gateway.retraining import NotEnoughData, retrain_challenger

    try:
        app = create_app()
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from exc
    state = app.extensions["loangate"]
    try:
        info = retrain_challenger(
            state,
            name,
            pipeline_name,
            kind=kind,
            since=since.replace(tzinfo=UTC) if since else None,
            min_rows=min_rows,
            created_by=_operator(),
        )
    except NotEnoughData as exc:
        raise click.ClickException(str(exc)) from exc
    auc = info.metadata.get("metrics", {}).get("auc", float("nan"))
    click.echo(f"registered {info.name} v{info.version} as challenger (holdout auc {auc:.3f})")


def _app_registry() -> Any:
    """The registry of a gateway built from the configuration, its pipelines following
    their models (so a promotion is checked against what they can score with)."""
    from gateway.app import create_app

    try:
        app = create_app()
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from exc
    return app.extensions["loangate"].extras["registry"]


def _operator() -> str:
    """Who runs a command, for the records it leaves."""
    from gateway.access_trail import os_user

    return f"cli:{os_user()}"


# --- plugins ------------------------------------------------------------------


@main.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def plugins_cmd(as_json: bool) -> None:
    """Installed plugins and the components they contribute."""
    from gateway.plugin_manager import collect_components, describe_plugins, make_plugin_manager

    pm = make_plugin_manager()
    listing = describe_plugins(pm, collect_components(pm))
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    for plugin in listing:
        version = f"{plugin['distribution']} {plugin['version']}" if plugin["distribution"] else "-"
        parts = (
            ", ".join(f"{c['kind']} {c['name']}" for c in plugin["components"]) or "(events only)"
        )
        click.echo(f"{plugin['name']:<20} {version:<20} {parts}")


# --- serving ------------------------------------------------------------------


def ensure_demo_client(state: Any) -> dict[str, str]:
    """The demo client's credentials, created on first use (or when the demo scopes grew)
    and kept in the instance folder."""
    from gateway.auth.clients import create_client, get_client

    path = state.instance_path / DEMO_CLIENT_FILE
    if path.exists():
        creds = json.loads(path.read_text())
        known = get_client(state.engine, creds["client_id"])
        # A demo client from an older release lacks newer scopes: make a new one then.
        if known is not None and set(DEMO_SCOPES) <= known.scopes:
            return dict(creds)
    client_id, secret = create_client(state.engine, "demo", list(DEMO_SCOPES))
    creds = {"client_id": client_id, "client_secret": secret}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(creds, fh)
    return creds


@main.command("serve")
@click.option("--bind", default=None, help="host:port (default: server.bind)")
@click.option("--workers", type=int, default=None, help="gunicorn workers")
@click.option("--threads", type=int, default=None, help="request threads per worker")
@click.option("--demo", is_flag=True, help="also train the demo model and print a demo client")
def serve(bind: str | None, workers: int | None, threads: int | None, demo: bool) -> None:
    """Migrate the database, then serve the gateway under gunicorn."""
    from gateway import db as database
    from gateway.console.cli import ensure_demo_admin

    state = _state()
    database.upgrade(state.engine)
    bind = bind or state.config["server"].get("bind", "127.0.0.1:8000")
    if demo:
        click.echo(train_model(state, "german-credit", "logistic", "champion", None, True))
        for model_name, model_kind in DEMO_KIND_MODELS.items():
            click.echo(train_model(state, model_name, model_kind, "champion", None, True))
        creds = ensure_demo_client(state)
        admin = ensure_demo_admin(state)
        base = f"http://{bind}"
        click.echo(
            "\n".join(
                [
                    "",
                    f"loangate is starting at {base}",
                    f"  demo client_id:     {creds['client_id']}",
                    f"  demo client_secret: {creds['client_secret']}",
                    "  get a token:",
                    f"    curl -s -u {creds['client_id']}:{creds['client_secret']} "
                    f"-d grant_type=client_credentials {base}/oauth/token",
                    f"  API description: {base}/openapi.json",
                    f"  console:            {base}/console/",
                    f"    sign in as {admin['name']} with the password {admin['password']}",
                    "",
                ]
            )
        )
    state.engine.dispose()
    env = dict(os.environ)
    env["LOANGATE_BIND"] = bind
    if workers:
        env["LOANGATE_WORKERS"] = str(workers)
    if threads:
        env["LOANGATE_SERVER__THREADS"] = str(threads)
    env.setdefault("LOANGATE_INSTANCE", str(state.instance_path))
    if not env.get("PROMETHEUS_MULTIPROC_DIR"):
        # Set before gunicorn starts: its workers then keep their metrics in files there,
        # which /metrics sums (gateway.metrics). Emptied at each start: counters restart.
        folder = state.instance_path / "prometheus"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:gateway.gunicorn_conf",
        "gateway.wsgi:app",
    ]
    sys.stdout.flush()
    os.execve(sys.executable, args, env)


def _add_auth_commands() -> None:
    from gateway.auth.cli import make_commands

    for command in make_commands(_state):
        main.add_command(command)


def _add_console_commands() -> None:
    from gateway.console.cli import make_commands

    for command in make_commands(_state):
        main.add_command(command)


def _add_batch_commands() -> None:
    from gateway.batch.cli import make_commands

    for command in make_commands():
        main.add_command(command)


def _add_plugin_commands() -> None:
    """Commands contributed by plugins (``register_commands``); a broken plugin is reported."""
    from gateway.plugin_manager import make_plugin_manager

    try:
        pm = make_plugin_manager()
    except Exception as exc:  # the CLI must still start to let an operator fix things
        click.echo(f"warning: plugins not loaded: {exc}", err=True)
        return
    for commands in pm.hook.register_commands():
        for command in commands or ():
            main.add_command(command)


def _add_personal_commands() -> None:
    from gateway.personal.cli import make_commands

    for command in make_commands(_state):
        main.add_command(command)


def _add_integrity_commands() -> None:
    from gateway.integrity.cli import add_commands

    add_commands(main, _state)


def _add_governance_commands() -> None:
    from gateway.decision_cli import add_commands

    add_commands(main, _state)


def _app() -> Any:
    from gateway.app import create_app

    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from exc


def _add_replay_commands() -> None:
    from gateway.replay.cli import add_commands

    add_commands(main, _app)


def _add_crm_commands() -> None:
    from gateway.crm.cli import add_commands

    add_commands(main, _state)


def _add_monitoring_commands() -> None:
    from gateway.monitoring.cli import add_commands

    add_commands(main, _app)


_add_auth_commands()
_add_console_commands()
_add_batch_commands()
_add_plugin_commands()
_add_integrity_commands()
_add_governance_commands()
_add_personal_commands()
_add_replay_commands()
_add_crm_commands()
_add_monitoring_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
