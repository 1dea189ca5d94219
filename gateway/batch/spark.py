"""Batch scoring on Spark: ``loangate batch score --engine spark``.

The executors run :func:`gateway.batch.scoring.score_frame`, the function the CLI's chunk
loop runs, through ``mapInPandas``: Spark only reads the input, spreads its rows over the
cluster and writes the output. Every row is logged under an idempotency key derived from
its input before any task runs, so a retried task, a speculative copy of one or a whole
job run again answers the rows already logged and adds nothing twice.

A row's identity is its Parquet file and its position in that file (Spark's
``_metadata.file_path`` and ``_metadata.row_index``): row ``n`` of a file is logged under
``batch:{sha256(file)[:16]}:{n}``, the key ``loangate batch score`` gives it without Spark,
whatever the cluster's partitioning (a row number computed after reading, like
``monotonically_increasing_id``, would change with it). A table is read through its files,
so it must be a Parquet table. The output's ``row_number`` counts rows across the files
in the order of their paths, as if they were one file.

The executor side builds its gateway (database engine, pipelines, models, decision log
with its companion rows and sealing) once per Python worker process and keeps it for the
worker's later tasks (:func:`executor_gateway`); Spark reuses workers by default.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd
from sqlalchemy import Engine, func, select

from gateway.batch.scoring import key_prefix, score_frame
from gateway.decision_log import decisions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from gateway.state import GatewayState

#: Columns added to the input before it is spread over the cluster (dropped before scoring).
KEY_COLUMN = "_loangate_key"
ROW_COLUMN = "_loangate_row"
OUTPUT_DDL = (
    "row_number long, decision_id string, status string, outcome string, "
    "probability_of_default double, reason_codes string, errors string"
)
_INTEGER_TYPES = frozenset({"ByteType", "ShortType", "IntegerType", "LongType"})


class InjectedFailure(RuntimeError):
    """Raised by a task told to fail (:attr:`ExecutorConfig.fail_first_attempt_after`)."""


@dataclass(frozen=True)
class ExecutorConfig:
    """What an executor needs to build its gateway and score: plain values, pickled into
    each task (it holds the database URL, so it is never logged)."""

    overrides: dict[str, Any]  # gateway configuration overrides: database URL, models dir
    instance_path: str | None
    pipeline: str
    client_id: str
    chunk_size: int = 5000
    #: Input columns of integer types (Arrow hands a column with nulls to pandas as floats).
    integer_columns: tuple[str, ...] = ()
    #: Fault drill: a task's first attempt raises once it has logged this many rows.
    fail_first_attempt_after: int | None = None
    events: bool = True

    def fingerprint(self) -> str:
        """What identifies the gateway this configuration builds."""
        body = orjson.dumps([self.overrides, self.instance_path], option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class SparkSummary:
    """What a Spark run did (as :class:`gateway.batch.runner.BatchSummary`)."""

    rows: int
    decided: int  # newly logged by this run
    skipped: int  # logged before
    files: int
    output: str


#: Gateways built in this worker process, by :meth:`ExecutorConfig.fingerprint`.
_GATEWAYS: dict[str, GatewayState] = {}


def executor_gateway(config: ExecutorConfig) -> GatewayState:
    """The gateway of ``config`` in this process, built on first use and kept."""
    key = config.fingerprint()
    state = _GATEWAYS.get(key)
    if state is None:
        from gateway.app import create_app

        app = create_app(config.overrides, instance_path=config.instance_path)
        state = _GATEWAYS[key] = app.extensions["loangate"]
    return state


def score_batches(
    config: ExecutorConfig, batches: Iterable[pd.DataFrame]
) -> Iterator[pd.DataFrame]:
    """The ``mapInPandas`` function: each batch scored :attr:`ExecutorConfig.chunk_size`
    rows at a time by :func:`score_frame`, one output frame per chunk."""
    state = executor_gateway(config)
    pipeline = state.extras["pipelines"][config.pipeline]
    log = state.extras["decision_log"]
    events = state.extras["events"] if config.events else None
    done = 0
    for batch in batches:
        for start in range(0, len(batch), config.chunk_size):
            part = batch.iloc[start : start + config.chunk_size]
            scored = score_frame(
                pipeline,
                log,
                _applications(part, config.integer_columns),
                keys=part[KEY_COLUMN].tolist(),
                row_numbers=part[ROW_COLUMN].tolist(),
                client_id=config.client_id,
                events=events,
            )
            done += len(part)
            _maybe_fail(config, done)
            yield scored.frame()


def _applications(part: pd.DataFrame, integers: Sequence[str]) -> pd.DataFrame:
    """The chunk's application columns as the CLI's Parquet reader gives them: object
    columns of Python values, missing cells ``None``, integers as integers."""
    columns = {}
    for name in part.columns:
        if name in (KEY_COLUMN, ROW_COLUMN):
            continue
        values = part[name].tolist()
        if name in integers:
            values = [None if v != v or v is None else int(v) for v in values]
        else:
            values = [None if v is None or (isinstance(v, float) and v != v) else v for v in values]
        columns[str(name)] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(part)))


def _maybe_fail(config: ExecutorConfig, done: int) -> None:
    limit = config.fail_first_attempt_after
    if limit is None or done < limit:
        return
    from pyspark import TaskContext

    task = TaskContext.get()
    if task is not None and task.attemptNumber() == 0:
        raise InjectedFailure(f"task {task.partitionId()} failed after logging {done} rows")


# --- the driver -------------------------------------------------------------------------


@dataclass(frozen=True)
class InputFile:
    """One Parquet file of the input: its path as Spark names it, rows, and key prefix."""

    path: str
    rows: int
    prefix: str


@dataclass
class SparkJob:
    """A Spark batch run's input and settings; :meth:`run` scores it."""

    spark: SparkSession
    source: str | Sequence[str]  # Parquet file(s) or folder(s), or a table name
    config: ExecutorConfig
    output: str
    table: bool = False
    partitions: int | None = None  # spread the rows over this many tasks (default: as read)
    files: list[InputFile] = field(default_factory=list)

    def read(self) -> DataFrame:
        """The input as Spark reads it."""
        reader = self.spark.read
        if self.table:
            return reader.table(str(self.source))
        paths = [self.source] if isinstance(self.source, str) else list(self.source)
        return reader.parquet(*paths)

    def keyed(self) -> DataFrame:
        """The input with each row's idempotency key and row number (see the module doc)."""
        from pyspark.errors import AnalysisException
        from pyspark.sql import functions as F

        frame = self.read()
        try:
            located = frame.select(
                "*",
                F.col("_metadata.file_path").alias("_loangate_path"),
                F.col("_metadata.row_index").alias("_loangate_index"),
            )
        except AnalysisException as exc:
            raise ValueError(
                f"{self.source}: not read from Parquet files (a table must be a Parquet table)"
            ) from exc
        self.files = input_files(self.spark, located)
        offsets, total = [], 0
        for f in self.files:
            offsets.append((f.path, f.prefix, total))
            total += f.rows
        known = self.spark.createDataFrame(
            offsets, "_loangate_path string, _loangate_prefix string, _loangate_offset long"
        )
        index = F.col("_loangate_index") + 1
        keyed = (
            located.join(F.broadcast(known), "_loangate_path")
            .withColumn(KEY_COLUMN, F.concat(F.col("_loangate_prefix"), index.cast("string")))
            .withColumn(ROW_COLUMN, F.col("_loangate_offset") + index)
            .drop("_loangate_path", "_loangate_index", "_loangate_prefix", "_loangate_offset")
        )
        if self.partitions:
            keyed = keyed.repartition(self.partitions, ROW_COLUMN)
        return keyed

    def decisions(self) -> DataFrame:
        """Each input row's decision (the output's columns), computed when written."""
        keyed = self.keyed()
        integers = tuple(
            f.name for f in keyed.schema.fields if type(f.dataType).__name__ in _INTEGER_TYPES
        )
        config = replace(self.config, integer_columns=integers)
        return keyed.mapInPandas(partial(score_batches, config), OUTPUT_DDL)

    def run(self, engine: Engine | None = None) -> SparkSummary:
        """Score the input and write the output (Parquet, one part per task).

        ``engine`` (the driver's connection to the same database) counts the records the
        run added; without it, ``decided`` is the number of rows.
        """
        out = self.decisions()
        before = _logged_count(engine, self.config.client_id, self.files)
        out.write.mode("overwrite").parquet(self.output)
        after = _logged_count(engine, self.config.client_id, self.files)
        rows = sum(f.rows for f in self.files)
        decided = after - before if engine is not None else rows
        return SparkSummary(rows, decided, rows - decided, len(self.files), self.output)


def input_files(spark: SparkSession, located: DataFrame) -> list[InputFile]:
    """The input's files in path order, with their rows and the sha256 of their bytes
    (Spark's ``binaryFile`` source reads each whole file once, on the executors)."""
    from pyspark.sql import functions as F

    counts = {
        r["_loangate_path"]: int(r["count"])
        for r in located.groupBy("_loangate_path").count().collect()
    }
    if not counts:
        return []
    digests = {
        r["path"]: r["sha"]
        for r in spark.read.format("binaryFile")
        .load(sorted(counts))
        .select("path", F.sha2("content", 256).alias("sha"))
        .collect()
    }
    missing = sorted(set(counts) - set(digests))
    if missing:
        raise ValueError(f"could not hash the input file(s) {missing[:3]}")
    return [InputFile(p, counts[p], key_prefix(digests[p])) for p in sorted(counts)]


def _logged_count(engine: Engine | None, client_id: str, files: Sequence[InputFile]) -> int:
    if engine is None:
        return 0
    c = decisions.c
    total = 0
    with engine.connect() as conn:
        for f in files:
            stmt = select(func.count()).where(
                c.client_id == client_id, c.idempotency_key.startswith(f.prefix, autoescape=True)
            )
            total += int(conn.execute(stmt).scalar_one())
    return total


def executor_config(
    state: GatewayState, pipeline: str, client_id: str, **settings: Any
) -> ExecutorConfig:
    """The executors' configuration from the driver's gateway: the same database (its URL
    must be reachable from the executors), models folder and instance folder."""
    from gateway.app import models_dir

    url = state.engine.url.render_as_string(hide_password=False)
    overrides = {"database": {"url": url}, "models": {"dir": str(models_dir(state))}}
    return ExecutorConfig(overrides, str(state.instance_path), pipeline, client_id, **settings)


def spark_session(master: str | None = None, conf: Sequence[tuple[str, str]] = ()) -> SparkSession:
    """A Spark session for a batch run (``master``: e.g. ``local[2]``, ``yarn``; default:
    what ``spark-submit`` or the environment sets). Python workers run this interpreter
    unless ``PYSPARK_PYTHON`` names another (as a cluster's executors need)."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("loangate-batch")
    if master:
        builder = builder.master(master)
    for key, value in conf:
        builder = builder.config(key, value)
    return builder.getOrCreate()
