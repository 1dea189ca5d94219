"""``loangate decisions list | aggregate | export`` and ``loangate audit trail``.

The same filters, sort orders and checks as the REST routes (one parser,
:mod:`gateway.decision_query`); every read is recorded in the access trail under the
operating-system user, before anything is printed or written.

$ loangate decisions list --outcome decline --since 2026-12-01T00:00:00Z --limit 20
$ loangate decisions list --sort probability --order desc --json
$ loangate decisions aggregate --group-by reason --pipeline credit-risk
$ loangate decisions export --format parquet --output decisions.parquet --overridden true
$ loangate audit trail --channel api --limit 100
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import orjson

from gateway.access_trail import CHANNELS, AccessTrail, os_user, parse_trail_query
from gateway.decision_aggregates import GROUPS, aggregate
from gateway.decision_export import FORMATS, write_export
from gateway.decision_log import DecisionLog, LogUnavailable
from gateway.decision_query import (
    FILTERS,
    ORDERS,
    PAGING,
    SORTING,
    SORTS,
    DecisionQuery,
    QueryError,
    parse_query,
)
from gateway.state import GatewayState

Command = Callable[..., Any]


def _option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def filter_options(command: Command) -> Command:
    """The listing filters as options (``--reason-code``...), all passed on as text."""
    helps = {
        "since": "received at or after (ISO 8601 with a zone)",
        "until": "received before (ISO 8601 with a zone)",
        "outcome": "approve, refer, decline, rejected or error",
        "min_probability": "probability of default at least (0..1)",
        "max_probability": "probability of default at most (0..1)",
        "reviewed": "true or false: with or without a human review",
        "overridden": "true or false: a reviewer approved the referral",
    }
    for name in reversed(FILTERS):
        command = click.option(_option_name(name), name, default=None, help=helps.get(name))(
            command
        )
    return command


def _query(options: dict[str, Any], allowed: tuple[str, ...]) -> DecisionQuery:
    args = {name: str(value) for name, value in options.items() if value is not None}
    try:
        return parse_query(args, allowed)
    except QueryError as exc:
        raise click.BadParameter(exc.detail, param_hint=_option_name(exc.name)) from None


def _record(state: GatewayState, action: str, params: dict[str, Any], count: int | None) -> None:
    try:
        AccessTrail(state.engine).record(
            actor=os_user(), channel="cli", action=action, params=params, result_count=count
        )
    except LogUnavailable as exc:
        raise click.ClickException(
            f"the access trail cannot be written ({exc}): the read is refused"
        ) from exc


def _unavailable(exc: LogUnavailable) -> click.ClickException:
    return click.ClickException(f"the decision log is unavailable ({exc})")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _table(rows: list[list[Any]], header: list[str]) -> None:
    cells = [header, *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def add_commands(main: click.Group, get_state: Callable[[], GatewayState]) -> None:
    """Add the commands to ``main``'s ``decisions`` group (created if absent) and an
    ``audit`` group."""
    group = main.commands.get("decisions")
    if not isinstance(group, click.Group):
        group = click.Group("decisions", help="The decision log.")
        main.add_command(group)

    @group.command("list")
    @filter_options
    @click.option("--sort", type=click.Choice(SORTS), default=None, help="default: id")
    @click.option("--order", type=click.Choice(ORDERS), default=None, help="default: desc")
    @click.option("--limit", default=None, help="page size, 1..500 (default 50)")
    @click.option("--cursor", default=None, help="next cursor printed by the previous page")
    @click.option("--json", "as_json", is_flag=True, help="one document per line (JSON)")
    def list_cmd(as_json: bool, **options: Any) -> None:
        """One page of logged decisions, newest first unless sorted otherwise."""
        query = _query(options, (*FILTERS, *SORTING, *PAGING))
        state = get_state()
        try:
            documents, next_cursor = DecisionLog(state.engine).query(query)
        except LogUnavailable as exc:
            raise _unavailable(exc) from exc
        _record(state, "loangate decisions list", query.as_params(), len(documents))
        if as_json:
            for document in documents:
                click.echo(document.decode())
        else:
            rows = []
            for raw in documents:
                doc = orjson.loads(raw)
                reasons = ",".join(r["code"] for r in doc.get("reason_codes") or ())
                model = doc.get("model") or {}
                rows.append(
                    [
                        doc["decision_id"],
                        doc["received_at"][:19],
                        doc["outcome"],
                        doc["probability_of_default"],
                        f"{model.get('name')}@{model.get('version')}" if model else None,
                        reasons or None,
                    ]
                )
            _table(
                rows, ["decision_id", "received_at", "outcome", "probability", "model", "reasons"]
            )
        if next_cursor:
            click.echo(f"next page: --cursor {next_cursor}", err=True)

    @group.command("aggregate")
    @filter_options
    @click.option("--group-by", type=click.Choice(GROUPS), required=True)
    @click.option("--json", "as_json", is_flag=True, help="the JSON the REST route answers")
    def aggregate_cmd(group_by: str, as_json: bool, **options: Any) -> None:
        """Counts, approval rate and mean probability per day, model, outcome, reason or
        pipeline."""
        query = _query(options, FILTERS)
        state = get_state()
        try:
            result = aggregate(state.engine, query, group_by)
        except LogUnavailable as exc:
            raise _unavailable(exc) from exc
        params = {**query.as_params(), "group_by": group_by}
        _record(state, "loangate decisions aggregate", params, result["totals"]["count"])
        if as_json:
            click.echo(json.dumps(result, indent=2, default=str))
            return
        measures = [
            "count",
            "approved",
            "referred",
            "declined",
            "approval_rate",
            "mean_probability",
        ]
        keys = [k for k in (result["groups"][0] if result["groups"] else {}) if k not in measures]
        rows = [[g[k] for k in keys] + [g[m] for m in measures] for g in result["groups"]]
        rows.append(["total"] + [""] * (len(keys) - 1) + [result["totals"][m] for m in measures])
        _table(rows, (keys or ["group"]) + measures)

    @group.command("export")
    @filter_options
    @click.option("--sort", type=click.Choice(SORTS), default=None, help="default: id")
    @click.option("--order", type=click.Choice(ORDERS), default=None, help="default: desc")
    @click.option("--format", "fmt", type=click.Choice(tuple(FORMATS)), default="csv")
    @click.option(
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        required=True,
        help="file to write ('-': standard output)",
    )
    def export_cmd(fmt: str, output: Path, **options: Any) -> None:
        """Export the matching records (facts, reason codes, review; no personal
        application fields) as CSV or Parquet, streamed with bounded memory."""
        query = _query(options, (*FILTERS, *SORTING))
        state = get_state()
        _record(state, "loangate decisions export", {**query.as_params(), "format": fmt}, None)
        try:
            if str(output) == "-":
                written = write_export(state.engine, query, fmt, sys.stdout.buffer)
            else:
                with output.open("wb") as out:
                    written = write_export(state.engine, query, fmt, out)
        except LogUnavailable as exc:
            raise _unavailable(exc) from exc
        if str(output) != "-":
            click.echo(f"wrote {written} bytes to {output}", err=True)

    audit = main.commands.get("audit")
    if not isinstance(audit, click.Group):
        audit = click.Group("audit", help="The access trail of reads of decisions.")
        main.add_command(audit)

    @audit.command("trail")
    @click.option("--since", default=None, help="at or after (ISO 8601 with a zone)")
    @click.option("--until", default=None, help="before (ISO 8601 with a zone)")
    @click.option("--actor", default=None, help="token subject or OS user")
    @click.option("--channel", type=click.Choice(CHANNELS), default=None)
    @click.option("--limit", default=None, help="page size, 1..500 (default 50)")
    @click.option("--cursor", default=None, help="next cursor printed by the previous page")
    @click.option("--json", "as_json", is_flag=True, help="one entry per line (JSON)")
    def trail_cmd(as_json: bool, **options: Any) -> None:
        """Who read which decisions, when, with which query; newest first."""
        args = {name: str(value) for name, value in options.items() if value is not None}
        try:
            query = parse_trail_query(args)
        except QueryError as exc:
            raise click.BadParameter(exc.detail, param_hint=_option_name(exc.name)) from None
        try:
            items, next_cursor = AccessTrail(get_state().engine).read(query)
        except LogUnavailable as exc:
            raise _unavailable(exc) from exc
        if as_json:
            for item in items:
                click.echo(json.dumps(item, sort_keys=True))
        else:
            rows = [
                [
                    i["at"][:19],
                    i["actor"],
                    i["channel"],
                    i["action"],
                    i["result_count"],
                    json.dumps(i["params"], sort_keys=True),
                ]
                for i in items
            ]
            _table(rows, ["at", "actor", "channel", "action", "count", "params"])
        if next_cursor:
            click.echo(f"next page: --cursor {next_cursor}", err=True)
