"""Batch scoring on Spark (local mode): the CLI's decisions, one record per row, retries too.

One SparkSession for the module's tests (``local[2,4]``: two cores, a failed task is tried
up to four times), in one xdist group so one worker holds it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from flask import Flask

from gateway.batch.readers import file_sha256
from gateway.batch.runner import key_prefix, score_file
from gateway.batch.spark import SparkJob, executor_config
from tests.batch_files import coded, german_rows
from tests.conftest import IN_CI

if not IN_CI:  # CI installs the spark extra: there a missing pyspark fails the module
    pytest.importorskip("pyspark")

from pyspark.sql import SparkSession

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]

ROWS = 1_000
COMPARED = ["status", "outcome", "probability_of_default", "reason_codes", "errors"]


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    os.environ["PYSPARK_PYTHON"] = sys.executable  # the executors' Python: this virtualenv
    session = (
        SparkSession.builder.master("local[2,4]")  # a failed task is tried up to 4 times
        .appName("loangate-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "250")
        .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("warehouse")))
        .config("spark.driver.extraJavaOptions", "-XX:+UseSerialGC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def applications(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 1,000 German credit rows as a Parquet file: one with a missing age (imputed: an
    integer column with a null) and one without its duration (rejected)."""
    rows = [coded(r) for r in german_rows()] * (ROWS // 1000)
    rows[5] = {**rows[5], "age_in_years": None}
    rows[7] = {**rows[7], "duration_in_month": None}
    path = tmp_path_factory.mktemp("input") / "applications.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=350)
    return path


def _records(app: Flask, client_id: str) -> dict[str, str]:
    """idempotency key -> decision id of the client's records."""
    with app.extensions["loangate"].engine.connect() as conn:
        rows = conn.execute(
            sa.text("select idempotency_key, id from decisions where client_id = :c"),
            {"c": client_id},
        ).all()
    assert len(rows) == len({r[0] for r in rows})  # no key twice (the unique index holds too)
    return {r[0]: r[1] for r in rows}


def _output(path: Path) -> pd.DataFrame:
    out = pq.read_table(path).to_pandas()
    return out.sort_values("row_number").reset_index(drop=True)


def _job(
    app: Flask,
    spark: SparkSession,
    source: str,
    output: Path,
    client_id: str,
    *,
    table: bool = False,
    **settings: Any,
) -> SparkJob:
    state = app.extensions["loangate"]
    config = executor_config(state, "credit-risk", client_id, chunk_size=100, **settings)
    return SparkJob(spark, source, config, str(output), table=table, partitions=4)


def test_spark_decides_as_the_cli_does_once_per_row(
    app: Flask, spark: SparkSession, applications: Path, tmp_path: Path
) -> None:
    state = app.extensions["loangate"]
    cli_out = tmp_path / "cli.parquet"
    score_file(
        state.extras["pipelines"]["credit-risk"],
        state.engine,
        applications,
        fmt="parquet",
        client_id="cli",
        output=cli_out,
        output_format="parquet",
        chunk_size=500,
        decision_log=state.extras["decision_log"],
    )
    job = _job(app, spark, str(applications), tmp_path / "spark", "spark")
    summary = job.run(state.engine)
    assert (summary.rows, summary.decided, summary.skipped, summary.files) == (ROWS, ROWS, 0, 1)

    cli, out = _output(cli_out), _output(tmp_path / "spark")
    assert list(out.columns) == list(cli.columns)
    assert out["row_number"].tolist() == list(range(1, ROWS + 1))
    pd.testing.assert_frame_equal(out[COMPARED], cli[COMPARED])
    assert out["status"].value_counts().to_dict() == {"decided": ROWS - 1, "rejected": 1}

    # One record per row, under the key the CLI gives the same row of the same file.
    prefix = key_prefix(file_sha256(applications))
    keys = _records(app, "spark")
    assert set(keys) == {f"{prefix}{n}" for n in range(1, ROWS + 1)}
    assert out["decision_id"].tolist() == [keys[f"{prefix}{n}"] for n in range(1, ROWS + 1)]
    assert set(keys.values()).isdisjoint(cli["decision_id"])  # decided here, not copied
    imputed = state.extras["decision_log"].get(keys[f"{prefix}6"]).parsed()
    assert any(i["field"] == "age_in_years" for i in imputed["imputations"])


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # what a cluster writes to
def test_failed_and_retried_tasks_leave_one_record_per_row(
    app: Flask, spark: SparkSession, applications: Path, tmp_path: Path
) -> None:
    group = f"drill-{tmp_path.name}"
    spark.sparkContext.setJobGroup(group, "tasks fail midway on their first attempt")
    try:
        # Each of the 2 tasks (500 rows) logs 300 rows in chunks of 100, then fails once.
        job = _job(
            app, spark, str(applications), tmp_path / "out", "drill", fail_first_attempt_after=300
        )
        job.partitions = 2
        summary = job.run(app.extensions["loangate"].engine)
    finally:
        spark.sparkContext.setJobGroup("", "")
    tracker = spark.sparkContext.statusTracker()
    failed = 0
    for job_id in tracker.getJobIdsForGroup(group):
        info = tracker.getJobInfo(job_id)
        for stage_id in info.stageIds if info else ():
            stage = tracker.getStageInfo(stage_id)
            failed += stage.numFailedTasks if stage else 0
    assert failed >= 2  # every scoring task failed midway once and was tried again

    assert (summary.rows, summary.decided, summary.skipped) == (ROWS, ROWS, 0)
    keys = _records(app, "drill")
    prefix = key_prefix(file_sha256(applications))
    assert set(keys) == {f"{prefix}{n}" for n in range(1, ROWS + 1)}
    out = _output(tmp_path / "out")
    assert out["row_number"].tolist() == list(range(1, ROWS + 1))
    assert out["decision_id"].tolist() == [keys[f"{prefix}{n}"] for n in range(1, ROWS + 1)]

    # The whole job run again adds nothing and answers the same decisions.
    again = _job(app, spark, str(applications), tmp_path / "again", "drill").run(
        app.extensions["loangate"].engine
    )
    assert (again.decided, again.skipped) == (0, ROWS)
    assert _records(app, "drill") == keys
    assert _output(tmp_path / "again")["decision_id"].tolist() == out["decision_id"].tolist()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_parquet_table_is_scored_through_its_files(
    app: Flask, spark: SparkSession, applications: Path, tmp_path: Path
) -> None:
    name = f"apps_{tmp_path.name.replace('-', '_')}"[:60]
    spark.read.parquet(str(applications)).limit(300).coalesce(2).write.saveAsTable(name)
    job = _job(app, spark, name, tmp_path / "out", "table", table=True)
    summary = job.run(app.extensions["loangate"].engine)
    assert (summary.rows, summary.decided) == (300, 300)
    keys = _records(app, "table")
    assert len(keys) == 300
    assert {k.rsplit(":", 1)[0] for k in keys} == {p.prefix[:-1] for p in job.files}
    assert sorted(_output(tmp_path / "out")["decision_id"]) == sorted(keys.values())

    not_parquet = f"{name}_json"
    spark.read.table(name).write.format("json").saveAsTable(not_parquet)
    with pytest.raises(ValueError, match="Parquet"):
        _job(app, spark, not_parquet, tmp_path / "no", "table", table=True).run()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_cli_scores_on_spark(
    app: Flask,
    db_url: str,
    spark: SparkSession,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from gateway.cli import main as cli

    monkeypatch.setenv("LOANGATE_DATABASE__URL", db_url)
    monkeypatch.setenv("LOANGATE_MODELS__DIR", str(tmp_path / "models"))
    monkeypatch.setenv("LOANGATE_INSTANCE", str(tmp_path / "instance"))
    path = tmp_path / "apps.parquet"
    pq.write_table(pa.Table.from_pylist([coded(r) for r in german_rows()[:120]]), path)
    args = ["batch", "score", str(path), "--pipeline", "credit-risk", "--engine", "spark"]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 2 and "needs --output" in refused.output
    refused = CliRunner().invoke(cli, [*args, "--output", "x", "--format", "csv"])
    assert refused.exit_code == 2 and "reads Parquet only" in refused.output

    out = tmp_path / "out"
    run = [*args, "--output", str(out), "--client-id", "cli-spark", "--partitions", "2"]
    result = CliRunner().invoke(cli, run)
    assert result.exit_code == 0, result.output
    assert "120 rows in 1 file(s): 120 decided, 0 already logged" in result.output
    again = CliRunner().invoke(cli, run)
    assert "120 rows in 1 file(s): 0 decided, 120 already logged" in again.output
    assert len(_records(app, "cli-spark")) == 120 == len(_output(out))
    assert spark.sparkContext._jsc is not None  # the test's session was left running
