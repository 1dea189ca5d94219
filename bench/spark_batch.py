"""Rows per second of ``loangate batch score`` without Spark and with ``--engine spark``
(local mode) on the same Parquet file and database.

Usage: ``.venv/bin/python bench/spark_batch.py [--rows 1000000] [--master local[2]]
[--no-write]`` (needs the spark extra and Java 17).

A fresh PostgreSQL schema (``LOANGATE_TEST_PG``, default the local test database: what a
cluster's executors write to) and a freshly trained demo model; the file is German credit
resampled (seeded), as the legacy codes a mainframe extract carries. Each command runs as
its own process, timed from start to exit (Spark's start-up included), under its own
client id so that neither skips the other's rows.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from report import replace_section  # noqa: E402  (the sibling bench module)

from gateway import db  # noqa: E402
from gateway.registry import ModelRegistry  # noqa: E402
from gateway.training import train  # noqa: E402
from tests.batch_files import coded, german_rows  # noqa: E402

DOC = ROOT / "docs" / "performance.md"
START, END = "<!-- bench:spark-batch -->", "<!-- /bench -->"
PG_URL = os.environ.get("LOANGATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
LOANGATE = [sys.executable, "-c", "from gateway.cli import main; main()"]


def write_input(path: Path, rows: int, seed: int = 2026) -> None:
    """``rows`` applications resampled from German credit, in row groups of 100,000."""
    source = [coded(r) for r in german_rows()]
    table = pa.Table.from_pylist(source)
    picks = np.random.default_rng(seed).integers(0, len(source), rows)
    with pq.ParquetWriter(path, table.schema) as writer:
        for start in range(0, rows, 100_000):
            writer.write_table(table.take(picks[start : start + 100_000]))


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[3:6]} failed:\n{done.stderr[-3000:]}")
    return wall, done.stdout


def count(url: str, client_id: str) -> int:
    engine = db.make_engine(url)
    with engine.connect() as conn:
        n = conn.execute(
            sa.text("select count(*) from decisions where client_id = :c"), {"c": client_id}
        ).scalar_one()
    engine.dispose()
    return int(n)


def measure(rows: int, master: str, chunk_size: int, partitions: int) -> dict[str, object]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            engine = db.make_engine(url)
            db.upgrade(engine)
            trained = train()
            ModelRegistry(engine, work / "models").register(
                "german-credit",
                trained.estimator,
                trained.metadata,
                kind=trained.kind,
                stage="champion",
                created_by="bench",
            )
            engine.dispose()
            data = work / "applications.parquet"
            write_input(data, rows)
            env = {
                **os.environ,
                "LOANGATE_DATABASE__URL": url,
                "LOANGATE_MODELS__DIR": str(work / "models"),
                "LOANGATE_INSTANCE": str(work / "instance"),
                "LOANGATE_LOGGING__LEVEL": "WARNING",
            }
            common = ["batch", "score", str(data), "--pipeline", "credit-risk",
                      "--chunk-size", str(chunk_size)]  # fmt: skip
            load = [os.getloadavg()[0]]
            cli_wall, cli_out = timed(
                [*LOANGATE, *common, "--output", str(work / "cli.parquet"), "--client-id", "cli"],
                env,
            )
            load.append(os.getloadavg()[0])
            spark_wall, spark_out = timed(
                [*LOANGATE, *common, "--engine", "spark", "--spark-master", master,
                 "--spark-conf", "spark.ui.enabled=false", "--partitions", str(partitions),
                 "--output", str(work / "spark"), "--client-id", "spark"],
                env,
            )  # fmt: skip
            load.append(os.getloadavg()[0])
            logged = (count(url, "cli"), count(url, "spark"))
            if logged != (rows, rows):
                raise SystemExit(f"records logged {logged}, expected {rows} each")
            return {
                "rows": rows,
                "master": master,
                "partitions": partitions,
                "chunk_size": chunk_size,
                "cli": (cli_wall, _reported(cli_out)),
                "spark": (spark_wall, _reported(spark_out)),
                "load": load,
                "file_bytes": data.stat().st_size,
            }
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _reported(stdout: str) -> int | None:
    found = re.search(r"(\d+) rows/s", stdout)
    return int(found.group(1)) if found else None


def section(r: dict[str, object]) -> str:
    rows = int(r["rows"])  # type: ignore[call-overload]
    cli: tuple[float, int | None] = r["cli"]  # type: ignore[assignment]
    spark: tuple[float, int | None] = r["spark"]  # type: ignore[assignment]
    (cli_wall, cli_rate), (spark_wall, spark_rate) = cli, spark
    load = r["load"]
    lines = [
        START,
        "## Batch on Spark: `--engine spark` in local mode beside the CLI",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; command: "
        "`.venv/bin/python bench/spark_batch.py`",
        f"- machine: {os.cpu_count()} cores, Python {platform.python_version()}, Spark "
        f"local mode `{r['master']}`, `--partitions {r['partitions']}`; "
        f"1-minute load average {load[0]:.1f} before, "  # type: ignore[index]
        f"{load[1]:.1f} between, {load[2]:.1f} after (a shared machine)",  # type: ignore[index]
        f"- input: {rows:,} rows of German credit resampled in one Parquet file "
        f"({int(r['file_bytes']) / 1e6:.2f} MB); chunks of {r['chunk_size']} rows; "  # type: ignore[call-overload]
        "PostgreSQL (local); pipeline `credit-risk`; each run logs one record per row under "
        "its own client id",
        "",
        "| engine | seconds (process start to exit) | rows/s | rows/s as the command reports |",
        "|---|---:|---:|---:|",
        f"| `loangate batch score` (one process, chunk by chunk) | {cli_wall:.1f} | "
        f"{rows / cli_wall:,.0f} | {cli_rate or 0:,} |",
        f"| `loangate batch score --engine spark` (local mode: a Python worker per task) | "
        f"{spark_wall:.1f} | {rows / spark_wall:,.0f} | {spark_rate or 0:,} |",
        "",
        f"Spark ran {spark_wall and cli_wall / spark_wall:.1f}x the command's speed here. "
        "Both run the same `score_frame` per chunk; the command is one process (one core), "
        "local mode runs a Python worker per task on every core, and adds its JVM start, two "
        "small jobs to identify the input, the Arrow hand-over and a shuffle. Compare per "
        "core (one process against one task) to see what Spark costs, and read the load "
        "averages: the machine is shared.",
        END,
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--chunk-size", type=int, default=5000)
    parser.add_argument("--partitions", type=int, default=os.cpu_count() or 2, help="Spark tasks")
    parser.add_argument("--no-write", action="store_true", help="print, do not edit the doc")
    args = parser.parse_args(argv)
    text = section(measure(args.rows, args.master, args.chunk_size, args.partitions))
    print(text)
    if not args.no_write:
        replace_section(DOC, START, text)


if __name__ == "__main__":
    main()
