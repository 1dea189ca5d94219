"""``loangate decisions replay``: replay logged decisions and report what did not reproduce.

$ loangate decisions replay 01JF3...                      # one decision
$ loangate decisions replay --sample 100 --seed 7         # 100 random decisions
$ loangate decisions replay --since 2026-12-01 --until 2026-12-02 --pipeline credit-risk
$ loangate decisions replay --sample 1000 --json > replay.json

Exit status: 0 when every replayed decision reproduced (erased ones are counted, not
failed), 1 when any differed, 3 when none differed but some could not be replayed
(a model artifact missing, a policy version never recorded...).
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import click
import orjson
from sqlalchemy import Engine, select

from gateway.access_trail import AccessTrail, os_user
from gateway.decision_log import LogUnavailable, decisions
from gateway.replay.engine import ERASED, Replayer, ReplayReport

#: Decisions fetched and replayed per round trip.
CHUNK = 500
EXIT_DIFFERED = 1
EXIT_NOT_REPLAYABLE = 3


@dataclass
class Summary:
    """Counts of a replay run, and the reports of the decisions that did not reproduce."""

    n: int = 0
    reproduced: int = 0
    differed: int = 0
    not_replayable: int = 0
    erased: int = 0
    reports: list[ReplayReport] = field(default_factory=list)

    def add(self, report: ReplayReport, keep_all: bool) -> None:
        self.n += 1
        if report.reproduced is True:
            self.reproduced += 1
        elif report.reproduced is False:
            self.differed += 1
        elif report.reason == ERASED:
            self.erased += 1
        else:
            self.not_replayable += 1
        if keep_all or report.reproduced is not True:
            self.reports.append(report)

    @property
    def exit_code(self) -> int:
        if self.differed:
            return EXIT_DIFFERED
        return EXIT_NOT_REPLAYABLE if self.not_replayable else 0

    def counts(self) -> dict[str, int]:
        return {
            "n": self.n,
            "reproduced": self.reproduced,
            "differed": self.differed,
            "not_replayable": self.not_replayable,
            "erased": self.erased,
        }


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("must be an ISO 8601 date or date-time", param_hint=name) from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _conditions(pipeline: str | None, since: datetime | None, until: datetime | None) -> list[Any]:
    c = decisions.c
    out: list[Any] = []
    if pipeline is not None:
        out.append(c.pipeline == pipeline)
    if since is not None:
        out.append(c.received_at >= since)
    if until is not None:
        out.append(c.received_at < until)
    return out


def sample_ids(engine: Engine, conditions: Sequence[Any], n: int, seed: int | None) -> list[str]:
    """``n`` ids drawn uniformly from the matching decisions (reservoir sampling over a
    streamed id column, so memory holds the sample, not the log); the same seed over
    the same log draws the same ids."""
    rng = random.Random(seed)
    reservoir: list[str] = []
    stmt = select(decisions.c.id).where(*conditions).order_by(decisions.c.id)
    with engine.connect() as conn:
        rows = conn.execution_options(stream_results=True, yield_per=5000).execute(stmt)
        for seen, (decision_id,) in enumerate(rows):
            if seen < n:
                reservoir.append(decision_id)
            else:
                slot = rng.randint(0, seen)
                if slot < n:
                    reservoir[slot] = decision_id
    return sorted(reservoir)


def documents_by_id(engine: Engine, ids: Sequence[str]) -> Iterator[dict[str, Any]]:
    """The documents of ``ids`` (in id order), fetched ``CHUNK`` at a time."""
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start : start + CHUNK])
        stmt = (
            select(decisions.c.document).where(decisions.c.id.in_(chunk)).order_by(decisions.c.id)
        )
        with engine.connect() as conn:
            for (document,) in conn.execute(stmt):
                yield orjson.loads(document)


def documents_where(engine: Engine, conditions: Sequence[Any]) -> Iterator[dict[str, Any]]:
    """Every matching document, oldest first, streamed."""
    stmt = select(decisions.c.document).where(*conditions).order_by(decisions.c.id)
    with engine.connect() as conn:
        rows = conn.execution_options(stream_results=True, yield_per=CHUNK).execute(stmt)
        for (document,) in rows:
            yield orjson.loads(document)


def replay_all(replayer: Replayer, documents: Iterator[dict[str, Any]], keep_all: bool) -> Summary:
    """Replay ``documents`` a chunk at a time (grouped by model and policy version)."""
    summary = Summary()
    chunk: list[dict[str, Any]] = []
    for document in documents:
        chunk.append(document)
        if len(chunk) == CHUNK:
            for report in replayer.replay_many(chunk):
                summary.add(report, keep_all)
            chunk = []
    for report in replayer.replay_many(chunk):
        summary.add(report, keep_all)
    return summary


def _print_human(summary: Summary) -> None:
    for report in summary.reports:
        if report.reproduced is False:
            click.echo(f"{report.decision_id}: DIFFERS")
            for difference in report.differences:
                click.echo(
                    f"  {difference.member}: logged {json.dumps(difference.logged)} "
                    f"replayed {json.dumps(difference.replayed)}"
                )
        elif report.reproduced is None:
            click.echo(f"{report.decision_id}: not replayable ({report.reason}): {report.detail}")
    counts = summary.counts()
    click.echo(
        f"replayed {counts['n']}: {counts['reproduced']} reproduced, {counts['differed']} "
        f"differed, {counts['not_replayable']} not replayable, {counts['erased']} erased"
    )


def add_commands(main: click.Group, get_app: Callable[[], Any]) -> None:
    """Add ``replay`` to the ``decisions`` group of ``main`` (created if absent).

    ``get_app`` builds the gateway (its configuration, pipelines and plugins), as the
    server does: replay builds logged versions through the same factory.
    """
    group = main.commands.get("decisions")
    if not isinstance(group, click.Group):
        group = click.Group("decisions", help="The decision log.")
        main.add_command(group)

    @group.command("replay")
    @click.argument("decision_id", required=False)
    @click.option("--sample", type=click.IntRange(min=1), help="replay N random decisions")
    @click.option("--seed", type=int, default=None, help="random seed of --sample")
    @click.option("--since", help="decisions received at or after (ISO 8601; UTC if no zone)")
    @click.option("--until", help="decisions received before (ISO 8601; UTC if no zone)")
    @click.option("--pipeline", help="only decisions of this pipeline")
    @click.option("--json", "as_json", is_flag=True, help="print every report as JSON")
    def replay_cmd(
        decision_id: str | None,
        sample: int | None,
        seed: int | None,
        since: str | None,
        until: str | None,
        pipeline: str | None,
        as_json: bool,
    ) -> None:
        """Re-run logged decisions with their logged model and policy versions.

        Give a DECISION_ID, or --sample N, or a range (--since/--until, --pipeline).
        Prints what did not reproduce and a summary; exits 1 if any decision differed.
        """
        selecting = sample is not None or since or until or pipeline
        if decision_id is not None and selecting:
            raise click.UsageError("give a DECISION_ID or a selection (--sample, --since...)")
        if decision_id is None and not selecting:
            raise click.UsageError("give a DECISION_ID, --sample N, or --since/--until")
        start, end = _when(since, "--since"), _when(until, "--until")
        app = get_app()
        state = app.extensions["loangate"]
        replayer: Replayer = state.extras["replayer"]
        engine: Engine = state.engine
        conditions = _conditions(pipeline, start, end)
        if decision_id is not None:
            stored = state.extras["decision_log"].get(decision_id)
            if stored is None:
                raise click.ClickException(f"no decision with id {decision_id!r}")
            documents: Iterator[dict[str, Any]] = iter([stored.parsed()])
        elif sample is not None:
            documents = documents_by_id(engine, sample_ids(engine, conditions, sample, seed))
        else:
            documents = documents_where(engine, conditions)
        summary = replay_all(replayer, documents, keep_all=as_json)
        params = {
            "decision_id": decision_id,
            "sample": sample,
            "seed": seed,
            "since": since,
            "until": until,
            "pipeline": pipeline,
        }
        try:  # a replay shows the records' values: a read, kept in the access trail
            AccessTrail(engine).record(
                actor=os_user(),
                channel="cli",
                action="decisions replay",
                params={k: v for k, v in params.items() if v is not None},
                result_count=summary.n,
            )
        except LogUnavailable as exc:
            raise click.ClickException(
                f"the access trail cannot be written ({exc}): the read is refused"
            ) from exc
        if as_json:
            out = {**summary.counts(), "reports": [r.as_dict() for r in summary.reports]}
            click.echo(json.dumps(out, indent=2))
        else:
            _print_human(summary)
        engine.dispose()
        sys.exit(summary.exit_code)
