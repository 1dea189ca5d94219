"""What tamper evidence costs, and how fast ``verify`` is, on PostgreSQL.

(a) Write path: two gateways on the same machine, each on its own fresh PostgreSQL schema,
    one with ``integrity.enabled: false`` (no background sealer), one with it on (every
    worker sealing every ``seal_interval_seconds``), loaded with wrk in interleaved rounds
    (reusing ``bench/rest_vs_echo.py``). The insert path is the same in both: the difference
    is what the sealers take from the machine.
(b) Verify: 1,000,000 synthetic decision rows bulk-inserted in one statement, sealed, then
    ``verify`` timed over all of them.

Writes the section between ``<!-- bench:integrity -->`` and ``<!-- /bench -->`` of
``docs/performance.md``. Re-run: ``.venv/bin/python bench/integrity.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import orjson
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rest_vs_echo as rve  # the sibling bench module
from report import replace_section  # the sibling bench module

from gateway import db as gwdb
from gateway.integrity.sealer import seal_all
from gateway.integrity.verify import verify

MARK = "<!-- bench:integrity -->"

#: A decision document of the usual shape and size; ``__ID__`` is replaced per row.
TEMPLATE = {
    "decision_id": "__ID__",
    "request_id": "req",
    "pipeline": "credit-risk",
    "adapter": "rest",
    "client_id": "lgc_bench",
    "application_id": "LN",
    "idempotency_key": None,
    "received_at": "2026-11-25T10:00:00+00:00",
    "decided_at": "2026-11-25T10:00:00.003+00:00",
    "status": "decided",
    "status_code": 201,
    "outcome": "refer",
    "probability_of_default": 0.31,
    "model": {"name": "german-credit", "version": 1, "sha256": "ab" * 32},
    "policy": {"version": "2026-11", "outcome": "refer", "thresholds": [0.2, 0.5]},
    "reason_codes": [{"code": f"R{i}", "feature": f"f{i}", "contribution": 0.1} for i in range(4)],
    "explanation": {"method": "linear-exact", "contributions": {f"f{i}": 0.01 for i in range(20)}},
    "timings_ms": {"validate": 0.02, "score": 0.05, "explain": 0.01, "policy": 0.01},
    "application": {f"field_{i}": i * 7 for i in range(20)},
    "features": {f"f{i}": i / 10 for i in range(20)},
}

READING = """
Reading: the insert path is the same with tamper evidence on or off (one INSERT, one
commit, no lock shared between writers); what sealing costs is the background sealers' work
(one anti-join over the last minute of ids and one batched insert every 2 s, a turn-taking
advisory lock held only by sealers). On this machine the difference stayed within the
run-to-run noise, where a chain head locked per row had cost about a third of PostgreSQL
throughput. When the counts above were taken, only the decisions of the last seal
interval were still waiting to be sealed (the unsealed window stays at about the seal
interval). Verify cost scales linearly: PostgreSQL builds each record hash in place
(`sha256` over the typed fields and the document's digest), Python checks it, the Merkle
roots and the checkpoint links over a streamed cursor, with memory flat."""

BULK_INSERT = """
INSERT INTO decisions (id, received_at, decided_at, pipeline, adapter, client_id, application_id,
    idempotency_key, request_hash, status_code, outcome, probability, model_name, model_version,
    model_sha256, policy_version, document)
SELECT id, ts, ts + interval '3 milliseconds', 'credit-risk', 'rest', 'lgc_bench', 'LN-' || g,
    NULL, md5(g::text) || md5((g + 1)::text), 201,
    CASE WHEN p < 0.3 THEN 'approve' ELSE 'refer' END, p, 'german-credit', 1, repeat('ab', 32),
    '2026-11', replace(:template, '__ID__', id)
FROM (
    SELECT g, '01' || lpad(g::text, 24, '0') AS id,
           timestamptz '2026-11-01' + g * interval '1 millisecond' AS ts,
           (g % 997) / 997.0::float8 AS p
    FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS g  -- psycopg binds untyped
) AS s
"""


@contextmanager
def env(name: str, value: str) -> Iterator[None]:
    """``os.environ[name] = value`` while inside (servers started then inherit it)."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def write_path(args: argparse.Namespace, tmp: Path) -> tuple[list[rve.Target], dict[str, str]]:
    """(a): the interleaved wrk rounds; the targets and a note per target."""
    body = rve.sample_body()
    notes: dict[str, str] = {}
    with ExitStack() as stack:
        targets, engines = [], []
        for name, enabled in (("integrity off", "false"), ("integrity on", "true")):
            folder = tmp / name.replace(" ", "-")
            folder.mkdir()
            url = stack.enter_context(rve.database("postgresql", folder))
            inst = rve.prepare_instance(url, folder)
            with env("LOANGATE_INTEGRITY__ENABLED", enabled):
                base = rve.start_gateway(stack, inst, "WARNING")
            getter = rve.token_getter(base, inst, args.duration + 5)
            script = folder / "gateway.lua"
            targets.append(rve.Target(name, base + rve.DECISIONS_PATH, script, getter))
            engines.append(stack.enter_context(rve.disposing(gwdb.make_engine(url))))
        audit = rve.measure(targets, args, body, engines[0])
        if audit.failures:
            raise SystemExit(f"{audit.failures} failed requests: see above")
        for target, engine in zip(targets, engines, strict=True):
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT count(*) FROM decisions")).scalar_one()
                sealed = conn.execute(sa.text("SELECT count(*) FROM decision_seals")).scalar_one()
                cps = conn.execute(
                    sa.text("SELECT count(*) FROM decision_checkpoints")
                ).scalar_one()
            notes[target.name] = f"{rows} rows, {sealed} sealed in {cps} checkpoints at the end"
    return targets, notes


def verify_million(rows: int) -> dict[str, float]:
    """(b): bulk-insert ``rows`` synthetic decisions, seal them, time verify."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    rve.run_admin(f'CREATE SCHEMA "{schema}"')
    try:
        engine = gwdb.make_engine(f"{rve.PG_URL}?options=-csearch_path%3D{schema}")
        gwdb.upgrade(engine)
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
        t1 = time.perf_counter()
        sealed = seal_all(engine, batch=50_000)
        t2 = time.perf_counter()
        report = verify(engine)
        t3 = time.perf_counter()
        engine.dispose()
        if not report.ok or report.records != rows or sealed != rows:
            raise SystemExit(f"verify failed: {report.as_dict()}")
        return {
            "insert_s": t1 - t0,
            "seal_s": t2 - t1,
            "verify_s": t3 - t2,
            "checkpoints": report.checkpoints,
            "doc_bytes": len(template) + 24,
        }
    finally:
        rve.run_admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def section(
    args: argparse.Namespace,
    targets: Sequence[rve.Target],
    notes: dict[str, str],
    big: dict[str, float] | None,
) -> str:
    off = targets[0]
    lines = [
        MARK,
        "## Tamper evidence: write-path cost and verify time (PostgreSQL)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; command: `.venv/bin/python "
        f"bench/integrity.py --duration {args.duration:g} --rounds {args.rounds}`",
        f"- machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, PostgreSQL on the "
        f"same machine; load average at the end {os.getloadavg()[0]:.2f}",
        "- two gateways (2 sync workers each, `LOANGATE_LOGGING__LEVEL=WARNING`), each on its own "
        "fresh schema, `integrity.enabled: false` vs `true` (sealing every 2 s in every worker); "
        f"wrk `-t2 -c8` and `-t1 -c1`, {args.duration:g} s per run, {args.rounds} interleaved "
        "rounds after a warm-up",
        "",
        "| load | target | req/s | p50 ms | p99 ms | req/s ÷ off | p50 ÷ off |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for scenario in rve.SCENARIOS:
        base = off.results[scenario.name]
        for target in targets:
            res = target.results[scenario.name]
            rps = statistics.fmean(r.rps for r in res)
            p50 = statistics.fmean(r.p50_ms for r in res)
            p99 = statistics.fmean(r.p99_ms for r in res)
            r_rps = [a.rps / b.rps for a, b in zip(res, base, strict=True)]
            r_p50 = [a.p50_ms / b.p50_ms for a, b in zip(res, base, strict=True)]
            lines.append(
                f"| {scenario.name} | {target.name} | {rps:.0f} | {p50:.2f} | {p99:.2f} | "
                f"{rve.ratio_cell(r_rps)} | {rve.ratio_cell(r_p50)} |"
            )
    lines += ["", *(f"- {name}: {note}" for name, note in notes.items())]
    if big is not None:
        lines += [
            "",
            f"Verify over {args.rows:,} records (synthetic documents of {big['doc_bytes']:.0f} "
            "bytes, bulk-inserted with one `INSERT … SELECT generate_series` per 200,000 rows):",
            "",
            "| step | seconds |",
            "|---|---:|",
            f"| bulk insert | {big['insert_s']:.1f} |",
            f"| seal (batches of 50,000: {big['checkpoints']:.0f} checkpoints) | "
            f"{big['seal_s']:.1f} |",
            f"| **verify** (every record hash, Merkle root and checkpoint link) | "
            f"**{big['verify_s']:.1f}** |",
        ]
    lines += READING.splitlines()
    lines.append(rve.END_MARKER)
    return "\n".join(lines)


def write_doc(path: Path, text: str) -> None:
    """Replace this bench's section of ``path`` (or append it), keeping the others."""
    replace_section(path, MARK, text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per target")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the verify timing")
    parser.add_argument("--skip-verify", action="store_true", help="only the write path")
    parser.add_argument("--doc", type=Path, default=rve.DOC)
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="loangate-bench-") as tmp:
        targets, notes = write_path(args, Path(tmp))
    big = None if args.skip_verify else verify_million(args.rows)
    text = section(args, targets, notes, big)
    print("\n" + text)
    if not args.no_doc:
        write_doc(args.doc, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
