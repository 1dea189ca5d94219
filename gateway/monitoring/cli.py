"""``loangate monitor``: run drift, performance and fairness checks; show and plot results.

``monitor run`` exits with status 3 when a run raised an alert (2 is click's usage
error), so cron or a Kubernetes CronJob can tell "drift found" from "all well".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from gateway.monitoring import runs
from gateway.monitoring.queries import Window

#: Exit status of ``monitor run`` when at least one alert fired.
ALERT_EXIT = 3
KINDS = ("drift", "performance", "fairness")


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("an ISO 8601 date or time", param_hint=name) from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _retrain(app: Any, done: list[Any]) -> None:
    """A challenger for each (pipeline, model) with a drift or performance alert."""
    from gateway.retraining import NotEnoughData, retrain_challenger

    alerted = sorted(
        {
            (d.run["pipeline"], d.run["model"])
            for d in done
            if d.alerts and d.run["kind"] != "fairness"
        }
    )
    for pipeline, model in alerted:
        try:
            info = retrain_challenger(
                app.extensions["loangate"], model, pipeline, created_by="monitor-retrain"
            )
        except NotEnoughData as exc:
            click.echo(f"  retraining {model} skipped: {exc}", err=True)
            continue
        click.echo(f"  retrained {model}: v{info.version} registered as challenger")


def add_commands(main: click.Group, make_app: Callable[[], Any]) -> None:
    """Add the ``monitor`` group to ``main`` (the app is built only when a command runs)."""

    @main.group("monitor")
    def monitor() -> None:
        """Drift, performance and fairness monitoring (docs/monitoring.md)."""

    @monitor.command("run")
    @click.option("--kind", type=click.Choice([*KINDS, "all"]), default="all", show_default=True)
    @click.option(
        "--window",
        "last",
        type=click.IntRange(1),
        default=None,
        help="the last N decisions (default: monitoring.window.last)",
    )
    @click.option("--since", default=None, help="decisions received from (ISO 8601, UTC)")
    @click.option("--until", default=None, help="decisions received before (ISO 8601, UTC)")
    @click.option("--pipeline", default=None, help="only this pipeline")
    @click.option(
        "--model-version",
        type=click.IntRange(1),
        default=None,
        help="bin against this version of the pipeline's model (default: current)",
    )
    @click.option("--json", "as_json", is_flag=True, help="print the runs as JSON")
    @click.option(
        "--retrain",
        is_flag=True,
        help="on a drift or performance alert, train a challenger on labelled decisions "
        "(registered as challenger, never promoted)",
    )
    def run(
        kind: str,
        last: int | None,
        since: str | None,
        until: str | None,
        pipeline: str | None,
        model_version: int | None,
        as_json: bool,
        retrain: bool,
    ) -> None:
        """Run checks now, store the results, send alerts; exit 3 if an alert fired."""
        app = make_app()
        monitor_ = app.extensions["loangate"].extras["monitor"]
        start, end = _when(since, "--since"), _when(until, "--until")
        if start is None and end is None and last is None:
            window = monitor_.default_window()
        else:
            window = Window(last=last, since=start, until=end)
        model = None
        if model_version is not None:
            scopes = monitor_.scopes(pipeline)
            if len(scopes) != 1:
                raise click.UsageError("--model-version needs --pipeline")
            model = (scopes[0].model_name, model_version)
        kinds = list(KINDS) if kind == "all" else [kind]
        try:
            done = monitor_.run(kinds, window, pipeline, model)
        except KeyError as exc:
            raise click.UsageError(str(exc.args[0])) from None
        except SQLAlchemyError as exc:
            raise click.ClickException(f"database unavailable ({type(exc).__name__})") from exc
        if as_json:
            click.echo(json.dumps([d.run for d in done], indent=2))
        else:
            for d in done:
                r = d.run
                click.echo(
                    f"{r['kind']:<12} {r['pipeline']} {r['model']} v{r['version']}: "
                    f"{r['window']['rows']} decisions, {r['results'].get('status', 'ok')}, "
                    f"{r['alerts']} alert(s)  [run {r['id']}]"
                )
                for a in d.alerts:
                    click.echo(
                        f"  {a.severity}: {a.subject} {a.statistic}={a.value:g} "
                        f"(threshold {a.threshold:g})"
                    )
                for dl in d.deliveries:
                    if not dl.delivered:
                        click.echo(f"  webhook {dl.sink} failed: {dl.error}", err=True)
        if retrain:
            _retrain(app, done)
        if any(d.alerts for d in done):
            raise SystemExit(ALERT_EXIT)

    @monitor.command("show")
    @click.option("--kind", type=click.Choice(KINDS), default="drift", show_default=True)
    @click.option("--pipeline", default=None, help="only this pipeline")
    @click.option("--run", "run_id", default=None, help="one run by id")
    def show(kind: str, pipeline: str | None, run_id: str | None) -> None:
        """Print the latest stored runs of KIND (or one run) as JSON."""
        engine = make_app().extensions["loangate"].engine
        if run_id is not None:
            found = runs.get(engine, run_id)
            if found is None:
                raise click.ClickException(f"no run {run_id!r}")
            click.echo(json.dumps(found, indent=2))
            return
        click.echo(json.dumps(runs.latest(engine, kind, pipeline), indent=2))

    @monitor.command("report")
    @click.option(
        "--html",
        "html_path",
        type=click.Path(dir_okay=False, path_type=Path),
        required=True,
        help="write a self-contained HTML report here",
    )
    @click.option("--pipeline", default=None, help="only this pipeline")
    @click.option(
        "--runs",
        "limit",
        type=click.IntRange(1, 1000),
        default=60,
        show_default=True,
        help="how many past drift runs to plot",
    )
    def report(html_path: Path, pipeline: str | None, limit: int) -> None:
        """Write an HTML report: drift over time (inline SVG), latest figures and alerts."""
        from gateway.monitoring.report import render

        app = make_app()
        engine = app.extensions["loangate"].engine
        html = render(
            runs.history(engine, "drift", pipeline, limit),
            {k: runs.latest(engine, k, pipeline) for k in KINDS},
            app.extensions["loangate"].extras["monitor"].settings["drift"],
        )
        html_path.write_text(html, encoding="utf-8")
        click.echo(f"wrote {html_path}")
