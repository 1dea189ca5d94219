"""``loangate batch score``: decide a file of applications, resumably, with progress."""

from __future__ import annotations

import sys
from pathlib import Path
from time import perf_counter
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from gateway.batch.copybook import ENCODINGS, CopybookError, load_copybook
from gateway.batch.mismo import count_deals
from gateway.batch.readers import FORMATS, count_rows, guess_format
from gateway.batch.runner import OUTPUT_FORMATS, score_file

DEFAULT_CLIENT_ID = "batch"
#: The mapping of ``--format mismo`` when ``--mapping`` names none.
MISMO_MAPPING = "mappings/mismo-3.4.yaml"


@click.group("batch")
def batch() -> None:
    """Batch files (CSV, Parquet, COBOL fixed-width, MISMO 3.4 XML or ZIP)."""


@batch.command("score")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--pipeline", "pipeline_name", required=True, help="pipeline to decide with")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="input format (default: from the file's suffix)",
)
@click.option(
    "--copybook",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="COBOL copybook of a fixed-width file",
)
@click.option(
    "--encoding",
    type=click.Choice(ENCODINGS),
    default="cp037",
    show_default=True,
    help="code page of a fixed-width file",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(1, 1_000_000),
    default=5000,
    show_default=True,
    help="rows decided and committed together",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="decisions file (default: FILE.decisions.csv)",
)
@click.option(
    "--output-format",
    type=click.Choice(OUTPUT_FORMATS),
    default=None,
    help="csv or parquet (default: from --output's suffix, else csv)",
)
@click.option(
    "--mapping",
    default=None,
    help="declarative mapping from the file's records to the application (config/mappings/; "
    "MISMO files: mappings/mismo-3.4.yaml unless named)",
)
@click.option(
    "--client-id",
    default=DEFAULT_CLIENT_ID,
    show_default=True,
    help="client the decisions are logged under (part of their idempotency keys)",
)
def score(
    file: Path,
    pipeline_name: str,
    fmt: str | None,
    copybook: Path | None,
    encoding: str,
    chunk_size: int,
    output: Path | None,
    output_format: str | None,
    mapping: str | None,
    client_id: str,
) -> None:
    """Decide every row of FILE and log each decision exactly once.

    Re-running after an interruption resumes: rows already logged are not decided
    again, and the output file is completed from the log.
    """
    from gateway.app import create_app
    from gateway.errors import ConfigError

    fmt = fmt or guess_format(file)
    if fmt == "fixed" and copybook is None:
        raise click.UsageError("a fixed-width file needs --copybook")
    try:
        book = load_copybook(copybook) if copybook is not None else None
    except CopybookError as exc:
        raise click.ClickException(f"{copybook}: {exc}") from exc
    output = output or file.with_name(file.name + ".decisions.csv")
    output_format = output_format or ("parquet" if output.suffix == ".parquet" else "csv")
    try:
        app = create_app()
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from exc
    state: Any = app.extensions["loangate"]
    pipeline = state.extras["pipelines"].get(pipeline_name)
    if pipeline is None:
        known = ", ".join(sorted(state.extras["pipelines"]))
        raise click.ClickException(f"no pipeline named {pipeline_name!r} (known: {known})")
    mapper = None
    if fmt == "mismo" and mapping is None:
        mapping = MISMO_MAPPING
    if mapping is not None:
        from gateway.mappings import load_mapping

        try:
            mapper = load_mapping(mapping, state.config_dir, pipeline.input_schema())
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from exc
    try:
        if fmt == "mismo" and mapper is not None:
            total = count_deals(file, mapper)
        else:
            total = count_rows(file, fmt, book)
    except ValueError as exc:  # e.g. a ZIP archive that cannot be read
        raise click.ClickException(f"{file}: {exc}") from exc
    started = perf_counter()
    with click.progressbar(length=total, label=f"{file.name}", file=sys.stderr) as bar:
        try:
            summary = score_file(
                pipeline,
                state.engine,
                file,
                fmt=fmt,
                client_id=client_id,
                output=output,
                output_format=output_format,
                chunk_size=chunk_size,
                copybook=book,
                encoding=encoding,
                events=state.extras["events"],
                on_chunk=bar.update,
                mapping=mapper,
                decision_log=state.extras["decision_log"],
            )
        except ValueError as exc:  # a file that does not match its format or copybook
            raise click.ClickException(str(exc)) from exc
        except SQLAlchemyError as exc:
            raise click.ClickException(
                f"the decision log is unavailable ({type(exc).__name__}): the chunk in progress "
                "was not logged; run the same command again to resume"
            ) from exc
    elapsed = perf_counter() - started
    click.echo(
        f"{summary.rows} rows: {summary.decided} decided, {summary.skipped} already logged; "
        f"{summary.rows / elapsed if elapsed else 0:.0f} rows/s; output {summary.output}"
    )


@batch.command("resume-jobs")
@click.option(
    "--limit", type=click.IntRange(1, 10_000), default=100, show_default=True, help="most jobs"
)
def resume_jobs_command(limit: int) -> None:
    """Resume uploaded batch jobs whose process died (queued or running, lease run out).

    Each is claimed (one process wins it), resumed from the decision log with no row
    logged twice, and run to its end here, one after the other.
    """
    from gateway.app import create_app
    from gateway.batch.jobs import job_context, resume_jobs
    from gateway.errors import ConfigError

    try:
        app = create_app()
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from exc
    try:
        ran = resume_jobs(job_context(app.extensions["loangate"]), limit)
    except SQLAlchemyError as exc:
        raise click.ClickException(f"the database is unavailable ({type(exc).__name__})") from exc
    for job_id, status in ran:
        click.echo(f"{job_id}: {status or 'taken by another process or paused'}")
    click.echo(f"{len(ran)} job(s) resumed")


def make_commands() -> list[click.Command]:
    """The ``batch`` command group (added to ``loangate``)."""
    return [batch]
