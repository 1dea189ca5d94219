"""Peak memory of a Parquet export of 1,000,000 decisions (PostgreSQL).

1,000,000 synthetic decision rows (the document shape of ``bench/integrity.py``, four
reason codes each) are bulk-inserted into a fresh PostgreSQL schema; then the export runs
in a child process, once through the REST route (``GET /v1/decisions/export?format=parquet``
on the Flask app, body streamed to a file: token check, access trail, the generator a
gunicorn worker would iterate) and once through the CLI's function
(``loangate decisions export``). The parent takes each child's peak resident set size from
``os.wait4`` (the kernel's ``ru_maxrss`` of that child alone) and checks the file.

Writes the section between ``<!-- bench:export-memory -->`` and ``<!-- /bench -->`` of
``docs/performance.md``. Re-run: ``.venv/bin/python bench/export_memory.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rest_vs_echo as rve  # the sibling bench modules
from integrity import BULK_INSERT, TEMPLATE
from report import END_MARKER, replace_section

from gateway.decision_export import BATCH_ROWS

MARK = "<!-- bench:export-memory -->"
LIMIT_MB = 500
ROOT = Path(__file__).resolve().parent.parent


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(via: str, url: str, output: Path) -> None:
    """Run one export (in the child process) and print its figures as JSON."""
    os.environ["LOANGATE_DATABASE__URL"] = url
    from gateway.decision_query import DecisionQuery

    started_rss = _rss_mb()
    t0 = time.perf_counter()
    if via == "http":
        from gateway import create_app

        app = create_app({"database": {"url": url}, "integrity": {"enabled": False}})
        token = app.extensions["loangate"].extras["auth"].mint_token("bench", ["decisions:read"])
        client = app.test_client()
        before = _rss_mb()
        t0 = time.perf_counter()
        resp = client.get(
            "/v1/decisions/export?format=parquet",
            headers={"Authorization": f"Bearer {token}"},
            buffered=False,
        )
        assert resp.status_code == 200, resp.status_code
        written = 0
        with output.open("wb") as out:
            for chunk in resp.response:
                out.write(chunk if isinstance(chunk, bytes) else chunk.encode())
                written += len(chunk)
        resp.close()
    else:
        from gateway import db
        from gateway.decision_export import write_export

        engine = db.make_engine(url)
        before = _rss_mb()
        t0 = time.perf_counter()
        with output.open("wb") as out:
            written = write_export(engine, DecisionQuery(), "parquet", out)
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "start_mb": started_rss,
                "ready_mb": before,
                "peak_self_mb": _rss_mb(),
                "seconds": seconds,
                "bytes": written,
            }
        )
    )


def run_child(via: str, url: str, output: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run :func:`child` in a subprocess; its figures plus the kernel's peak RSS for it."""
    args = [sys.executable, __file__, "--child", via, "--url", url, "--output", str(output)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, env=env, cwd=ROOT)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"export via {via} failed ({proc.returncode})")
    figures: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    figures["peak_mb"] = usage.ru_maxrss / 1024
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(output).metadata
    figures["rows"] = meta.num_rows
    figures["row_groups"] = meta.num_row_groups
    return figures


def fill(engine: sa.Engine, rows: int) -> float:
    """Bulk-insert ``rows`` synthetic decisions; the seconds it took."""
    template = orjson.dumps(TEMPLATE).decode()
    t0 = time.perf_counter()
    step = 200_000
    for first in range(1, rows + 1, step):
        with engine.begin() as conn:
            conn.execute(
                sa.text(BULK_INSERT),
                {"template": template, "first": first, "last": min(rows, first + step - 1)},
            )
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE decisions"))
    return time.perf_counter() - t0


def measure(rows: int) -> tuple[dict[str, dict[str, Any]], float]:
    """Fill a fresh schema, run both exports; (figures per path, insert seconds)."""
    from gateway import db

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    rve.run_admin(f'CREATE SCHEMA "{schema}"')
    url = f"{rve.PG_URL}?options=-csearch_path%3D{schema}"
    try:
        engine = db.make_engine(url)
        db.upgrade(engine)
        insert_s = fill(engine, rows)
        engine.dispose()
        with tempfile.TemporaryDirectory(prefix="loangate-export-") as tmp:
            env = {
                **os.environ,
                "LOANGATE_DATABASE__URL": url,
                "LOANGATE_MODELS__DIR": str(Path(tmp) / "models"),
                "LOANGATE_INSTANCE": str(Path(tmp) / "instance"),
                "LOANGATE_LOGGING__LEVEL": "WARNING",
            }
            # The app builds its pipelines, which need a champion model.
            subprocess.run(
                [str(ROOT / ".venv" / "bin" / "loangate"), "models", "train", "--if-missing"],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            results = {}
            for via in ("http", "cli"):
                output = Path(tmp) / f"{via}.parquet"
                results[via] = run_child(via, url, output, env)
                results[via]["file_mb"] = output.stat().st_size / 1e6
                output.unlink()
                if results[via]["rows"] != rows:
                    raise SystemExit(f"{via}: exported {results[via]['rows']} of {rows} rows")
        return results, insert_s
    finally:
        rve.run_admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def section(rows: int, results: dict[str, dict[str, Any]], insert_s: float) -> str:
    doc_bytes = len(orjson.dumps(TEMPLATE)) + 24
    lines = [
        MARK,
        "## Export to Parquet: peak memory over 1,000,000 records (PostgreSQL)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; command: `.venv/bin/python "
        f"bench/export_memory.py --rows {rows}`",
        f"- machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, PostgreSQL on "
        f"the same machine; load average at the end {os.getloadavg()[0]:.2f}",
        f"- data: {rows:,} synthetic decisions (documents of {doc_bytes} bytes, four reason "
        f"codes each), bulk-inserted in {insert_s:.0f} s",
        "- each export in its own process; peak RSS is the kernel's `ru_maxrss` of that process "
        "(`os.wait4`), everything included: interpreter, Flask app, pyarrow, the driver",
        "",
        "| path | rows | row groups | file MB | seconds | RSS before export MB | "
        "**peak RSS MB** | limit MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = {
        "http": "REST `GET /v1/decisions/export?format=parquet` (streamed body)",
        "cli": "CLI `loangate decisions export --format parquet`",
    }
    for via, fig in results.items():
        lines.append(
            f"| {names[via]} | {fig['rows']:,} | {fig['row_groups']} | {fig['file_mb']:.1f} | "
            f"{fig['seconds']:.1f} | {fig['ready_mb']:.0f} | **{fig['peak_mb']:.0f}** | "
            f"{LIMIT_MB} |"
        )
    added = max(fig["peak_mb"] - fig["ready_mb"] for fig in results.values())
    lines += [
        "",
        f"Reading: rows come from a server-side cursor {BATCH_ROWS:,} at a time and leave as "
        "one Parquet row group each before the next batch is fetched, so the peak is the "
        "process's fixed cost plus one batch, whatever the number of records. Most of the "
        "peak is that fixed cost (the gateway package imports scikit-learn, pandas and "
        f"pyarrow); the export itself adds at most {added:.0f} MB. Times are long on a busy "
        "machine (see the load average): a sync gunicorn worker is killed after "
        "`server.timeout_seconds` (30 s by default), so exports that take longer belong to "
        "the CLI, or to a server with a larger timeout.",
        END_MARKER,
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--doc", type=Path, default=rve.DOC)
    parser.add_argument("--no-doc", action="store_true", help="print only")
    parser.add_argument("--child", choices=("http", "cli"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.url, args.output)
        return 0
    results, insert_s = measure(args.rows)
    text = section(args.rows, results, insert_s)
    print("\n" + text)
    if not args.no_doc:
        replace_section(args.doc, MARK, text)
    worst = max(fig["peak_mb"] for fig in results.values())
    return 0 if worst < LIMIT_MB else 1


if __name__ == "__main__":
    sys.exit(main())
