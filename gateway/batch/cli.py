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
#: Where ``batch score`` runs: this process, or a Spark cluster (:mod:`gateway.batch.spark`).
ENGINES = ("local", "spark")
#: The mapping of ``--format mismo`` when ``--mapping`` names none.
MISMO_MAPPING = "mappings/mismo-3.4.yaml"


@click.group("batch")
def batch() -> None:
    """Batch files (CSV, Parquet, COBOL fixed-width, MISMO 3.4 XML or ZIP)."""


@batch.command("score")
@click.argument("source")
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
    type=click.Path(),  # kept as given: with --engine spark, maybe a URI (s3a://...)
    default=None,
    help="decisions file (default: FILE.decisions.csv; with --engine spark, a folder)",
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
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="local",
    show_default=True,
    help="local: this process, chunk by chunk; spark: a Spark cluster (Parquet or a table in, "
    "a Parquet folder out; the spark extra)",
)
@click.option("--table", is_flag=True, help="spark: SOURCE names a (Parquet) table, not files")
@click.option("--spark-master", default=None, help="spark: master URL (default: spark-submit's)")
@click.option(
    "--spark-conf",
    "spark_conf",
    multiple=True,
    metavar="KEY=VALUE",
    help="spark: a Spark setting (repeatable)",
)
@click.option(
    "--partitions",
    type=click.IntRange(1, 100_000),
    default=None,
    help="spark: tasks the rows are spread over (default: as the input is read)",
)
def score(
    source: str,
    pipeline_name: str,
    fmt: str | None,
    copybook: Path | None,
    encoding: str,
    chunk_size: int,
    output: str | None,
    output_format: str | None,
    mapping: str | None,
    client_id: str,
    engine: str,
    table: bool,
    spark_master: str | None,
    spark_conf: tuple[str, ...],
    partitions: int | None,
) -> None:
    """Decide every row of SOURCE (a file; with --engine spark, Parquet files, a folder of
    them or, with --table, a table) and log each decision exactly once.

    Re-running after an interruption resumes: rows already logged are not decided
    again, and the output file is completed from the log.
    """
    from gateway.errors import ConfigError

    if engine == "spark":
        if fmt not in (None, "parquet") or copybook is not None or mapping is not None:
            raise click.UsageError(
                "--engine spark reads Parquet only (no --format, --copybook, --mapping)"
            )
        if output is None:
            raise click.UsageError("--engine spark needs --output (a folder of Parquet parts)")
        _score_on_spark(
            source,
            pipeline_name,
            client_id,
            output,
            chunk_size,
            table,
            spark_master,
            spark_conf,
            partitions,
        )
        return
    file = click.Path(exists=True, dir_okay=False, path_type=Path).convert(source, None, None)
    if output is not None and Path(output).is_dir():
        raise click.BadParameter(f"{output} is a directory", param_hint="'--output'")
    fmt = fmt or guess_format(file)
    if fmt == "fixed" and copybook is None:
        raise click.UsageError("a fixed-width file needs --copybook")
    try:
        book = load_copybook(copybook) if copybook is not None else None
    except CopybookError as exc:
        raise click.ClickException(f"{copybook}: {exc}") from exc
    out = Path(output) if output is not None else file.with_name(file.name + ".decisions.csv")
    output_format = output_format or ("parquet" if out.suffix == ".parquet" else "csv")
    state = _gateway(pipeline_name)
    pipeline = state.extras["pipelines"][pipeline_name]
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
                output=out,
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


def _score_on_spark(
    source: str,
    pipeline_name: str,
    client_id: str,
    output: str,
    chunk_size: int,
    table: bool,
    master: str | None,
    conf: tuple[str, ...],
    partitions: int | None,
) -> None:
    """``score --engine spark``: the executors decide and log; this process drives."""
    try:
        from pyspark.sql import SparkSession

        from gateway.batch.spark import SparkJob, executor_config, spark_session
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise click.ClickException(
            "--engine spark needs pyspark: pip install 'loangate[spark]'"
        ) from exc
    settings = []
    for item in conf:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.UsageError(f"--spark-conf {item!r}: expected KEY=VALUE")
        settings.append((key.strip(), value))
    state = _gateway(pipeline_name)
    config = executor_config(state, pipeline_name, client_id, chunk_size=chunk_size)
    started = perf_counter()
    ours = SparkSession.getActiveSession() is None  # stop only a session started here
    spark = spark_session(master, settings)
    job = SparkJob(spark, source, config, output, table=table, partitions=partitions)
    try:
        summary = job.run(state.engine)
    except ValueError as exc:  # not Parquet
        raise click.ClickException(str(exc)) from exc
    finally:
        if ours:
            spark.stop()
    elapsed = perf_counter() - started
    click.echo(
        f"{summary.rows} rows in {summary.files} file(s): {summary.decided} decided, "
        f"{summary.skipped} already logged; {summary.rows / elapsed if elapsed else 0:.0f} "
        f"rows/s; output {summary.output}"
    )


def _gateway(pipeline_name: str) -> Any:
    """The gateway's state, checked to hold ``pipeline_name``."""
    from gateway.app import create_app
    from gateway.errors import ConfigError

    try:
        app = create_app()
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from exc
    state: Any = app.extensions["loangate"]
    if pipeline_name not in state.extras["pipelines"]:
        known = ", ".join(sorted(state.extras["pipelines"]))
        raise click.ClickException(f"no pipeline named {pipeline_name!r} (known: {known})")
    return state


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
