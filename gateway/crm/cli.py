"""``loangate crm deliver | outbox | requeue``: operating the CRM write-back outbox.

$ loangate crm outbox                 # rows per status, the oldest pending one
$ loangate crm outbox --failed        # the write-backs that failed for good, and why
$ loangate crm deliver --once         # deliver what is due now, then exit (cron)
$ loangate crm deliver                # keep delivering until interrupted
$ loangate crm requeue 01J...         # try a failed write-back again (after fixing the cause)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict

import click

from gateway.crm import outbox
from gateway.crm.delivery import Deliverer
from gateway.crm.writeback import Writeback, configure
from gateway.errors import ConfigError
from gateway.outbound.connections import Connections, build_connections
from gateway.state import GatewayState


def _writeback(state: GatewayState) -> tuple[Writeback, Connections]:
    try:
        connections = build_connections(state.config.get("connections") or {}, state.config_dir)
        writeback = configure(state.config, connections)
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from exc
    if writeback is None:
        connections.close()
        raise click.ClickException("crm_writeback is not configured (or not enabled)")
    return writeback, connections


def make_group(get_state: Callable[[], GatewayState]) -> click.Group:
    """The ``crm`` command group."""

    @click.group("crm")
    def crm() -> None:
        """CRM write-back: decisions written back to the CRM records they came from."""

    @crm.command("outbox")
    @click.option("--failed", "show_failed", is_flag=True, help="list failed write-backs")
    @click.option("--pending", "show_pending", is_flag=True, help="list pending write-backs")
    @click.option("--json", "as_json", is_flag=True, help="print JSON")
    def outbox_cmd(show_failed: bool, show_pending: bool, as_json: bool) -> None:
        """Write-backs per status; exits 1 when some failed for good."""
        state = get_state()
        report = outbox.summary(state.engine)
        if show_failed:
            report["failed"] = outbox.rows(state.engine, outbox.FAILED)
        if show_pending:
            report["pending"] = outbox.rows(state.engine, outbox.PENDING)
        if as_json:
            click.echo(json.dumps(report, indent=2, default=str))
        else:
            counts = report["counts"]
            click.echo("  ".join(f"{name} {counts[name]}" for name in outbox.STATUSES))
            if report["oldest_pending"]:
                click.echo(f"oldest pending since {report['oldest_pending']}")
            for status in ("failed", "pending"):
                for row in report.get(status, ()):
                    click.echo(
                        f"{status}\t{row['decision_id']}\t{row['object']}/{row['record_id']}\t"
                        f"attempts {row['attempts']}\tlast {row['last_status'] or '-'} "
                        f"{row['last_error'] or ''}".rstrip()
                    )
        if report["counts"][outbox.FAILED]:
            raise SystemExit(1)

    @crm.command("deliver")
    @click.option("--once", is_flag=True, help="deliver what is due now, then exit")
    def deliver(once: bool) -> None:
        """Deliver due write-backs (beside, or instead of, the server's own threads)."""
        state = get_state()
        writeback, connections = _writeback(state)
        deliverer = Deliverer(state.engine, writeback)
        interval = writeback.settings.delivery.interval_seconds
        try:
            while True:
                result = deliverer.drain()
                if once or result.claimed:
                    click.echo(json.dumps(asdict(result)))
                if once:
                    return
                time.sleep(interval)
        except KeyboardInterrupt:
            return
        finally:
            connections.close()

    @crm.command("requeue")
    @click.argument("decision_ids", nargs=-1, required=True)
    def requeue(decision_ids: tuple[str, ...]) -> None:
        """Make failed write-backs pending again, to be delivered on the next pass."""
        state = get_state()
        n = outbox.requeue(state.engine, decision_ids, outbox.utcnow())
        click.echo(f"requeued {n} write-backs")

    return crm


def add_commands(main: click.Group, get_state: Callable[[], GatewayState]) -> None:
    """Add the ``crm`` group to ``main``."""
    main.add_command(make_group(get_state))
