"""``loangate decisions seal | verify | checkpoints``: the tamper-evidence commands.

$ loangate decisions seal                 # seal what is committed (the server does it too)
$ loangate decisions verify               # seal, then check the whole chain
$ loangate decisions verify --anchors checkpoints.jsonl
$ loangate decisions checkpoints --export checkpoints.jsonl
$ loangate decisions verify --bundle evidence.json   # offline: no database
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import orjson
from sqlalchemy import select

from gateway.integrity.background import settings
from gateway.integrity.chain import Checkpoint
from gateway.integrity.evidence import check_bundle
from gateway.integrity.sealer import checkpoints, seal_all
from gateway.integrity.verify import verify
from gateway.state import GatewayState


def read_anchors(path: Path) -> dict[int, str]:
    """Checkpoint id -> hash from a file written by ``checkpoints --export`` (JSON lines)."""
    anchors: dict[int, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            anchors[int(item["id"])] = str(item["hash"])
    return anchors


def add_commands(main: click.Group, get_state: Callable[[], GatewayState]) -> None:
    """Add the commands to the ``decisions`` group of ``main`` (created if absent)."""
    group = main.commands.get("decisions")
    if not isinstance(group, click.Group):
        group = click.Group("decisions", help="The decision log.")
        main.add_command(group)

    @group.command("seal")
    @click.option("--late", is_flag=True, help="also seal rows older than the sealing window")
    def seal(late: bool) -> None:
        """Seal committed decisions into the tamper-evident chain."""
        state = get_state()
        conf = settings(state.config)
        n = seal_all(
            state.engine, batch=conf["batch"], late_after=conf["late_after_seconds"], late=late
        )
        click.echo(f"sealed {n} decisions")

    @group.command("verify")
    @click.option(
        "--bundle",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="check an evidence bundle offline (no database) instead of the log",
    )
    @click.option(
        "--anchors",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="exported checkpoints (JSON lines) the log and bundle must agree with",
    )
    @click.option("--no-seal", is_flag=True, help="verify without sealing pending rows first")
    def verify_cmd(bundle: Path | None, anchors: Path | None, no_seal: bool) -> None:
        """Check every record, seal and checkpoint; exit 1 naming the first problem."""
        anchored = read_anchors(anchors) if anchors else {}
        if bundle is not None:
            problems = check_bundle(bundle.read_bytes(), set(anchored.values()))
            click.echo(json.dumps({"ok": not problems, "problems": problems}, indent=2))
            sys.exit(1 if problems else 0)
        state = get_state()
        conf = settings(state.config)
        if not no_seal:
            seal_all(state.engine, batch=conf["batch"], late_after=conf["late_after_seconds"])
        report = verify(state.engine, late_after=conf["late_after_seconds"], anchors=anchored)
        click.echo(json.dumps(report.as_dict(), indent=2))
        sys.exit(0 if report.ok else 1)

    @group.command("checkpoints")
    @click.option(
        "--export",
        "export",
        type=click.Path(dir_okay=False, path_type=Path),
        help="write every checkpoint to FILE as JSON lines (for anchoring elsewhere)",
    )
    def checkpoints_cmd(export: Path | None) -> None:
        """List checkpoints, or export their digests for anchoring outside the database."""
        state = get_state()
        out: Any = export.open("wb") if export else sys.stdout.buffer
        n = 0
        try:
            with state.engine.connect() as conn:
                rows = conn.execution_options(stream_results=True, yield_per=5000).execute(
                    select(checkpoints).order_by(checkpoints.c.id)
                )
                for row in rows:
                    out.write(orjson.dumps(Checkpoint.from_row(row).as_dict()) + b"\n")
                    n += 1
        finally:
            if export:
                out.close()
        if export:
            click.echo(f"exported {n} checkpoints to {export}")
