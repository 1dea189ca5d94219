"""Does a large decision log slow the hot path? REST decisions at 10³, 10⁵ and 10⁷ logged
decisions (PostgreSQL), loaded with wrk, interleaved.

For each size, in its own fresh PostgreSQL schema:

1. a gateway with ``integrity.enabled: false`` answers one real decision (German credit row
   1, with an idempotency key), then stops: that decision's rows in ``decisions`` and in
   every companion table (reason codes, monitoring row, subject and its key) are the
   template of the filler;
2. the filler: ``size - 1`` decisions copied from it in SQL (``INSERT … SELECT`` over
   ``generate_series``, chunks of :data:`CHUNK`), each with its own ULID (the same 48-bit
   millisecond time + 80 random bits as :mod:`gateway.ids`, dated one millisecond apart
   before the template, so the real ids that follow sort after them as in production), its
   own idempotency key, application id, request hash, subject and data key, so every unique
   and secondary index grows as with real traffic. Secondary (non-constraint) indexes are
   dropped for the fill and rebuilt after it, then ``ANALYZE``;
3. the filler is sealed as a running gateway would have left it: one ``decision_seals``
   row per filler decision and one checkpoint per 10,000, chained, the last one sealed now.
   The sealer of the measured gateway then finds its head as usual and its window (ids
   younger than ``late_after`` before the head) holds only the real decisions: it never
   scans the filler. The filler's hashes are stand-ins, not record hashes, so ``verify``
   is not meant to pass on these schemas (verify's own cost is in the integrity section);
4. a gateway with the configured defaults (tamper evidence on) serves the schema.

Then every size's gateway is loaded in the same interleaved rounds (``bench/rest_vs_echo.py``
does the wrk runs), each request with a fresh ``Idempotency-Key`` so the key lookup and the
unique index are on the path. Writes ``<!-- bench:growth -->`` in ``docs/performance.md``.

    .venv/bin/python bench/growth.py [--sizes 1e3,1e5,1e7] [--duration 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rest_vs_echo as rve  # the sibling bench module
from report import replace_section  # the sibling bench module

from gateway import db as gwdb

MARK = "<!-- bench:growth -->"
#: Filler decisions per statement (one transaction each).
CHUNK = 200_000
#: Decisions per filler checkpoint (the gateway's default ``integrity.batch``).
SEAL_BATCH = 10_000

#: wrk script: the shared one, plus a fresh ``Idempotency-Key`` per request.
IDEMPOTENT_LUA = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"

local threads = {{}}
setup = function(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local counter = 0
request = function()
  counter = counter + 1
  local headers = {{}}
  for k, v in pairs(wrk.headers) do headers[k] = v end
  headers["Idempotency-Key"] = "{run}-" .. tid .. "-" .. counter
  return wrk.format(nil, nil, headers)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{tag}{{"requests":%d,"duration_us":%d,"status_errors":%d,"connect":%d,"read":%d,'
    .. '"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""

# --- ids in SQL ------------------------------------------------------------------------

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _base32(value: str, digits: int) -> str:
    """SQL: the last ``digits`` Crockford base32 digits of the bigint expression ``value``."""
    parts = [
        f"substr('{_ALPHABET}', (({value} >> {5 * (digits - 1 - i)}) & 31)::int + 1, 1)"
        for i in range(digits)
    ]
    return " || ".join(parts)


#: SQL: filler ``g``'s ULID from the columns ``ms`` (its time: ``:n + 1 - g`` milliseconds
#: before the template's) and ``r1``, ``r2`` (80 random bits, 60 + 20, from md5s of ``g``),
#: computed once per row beneath an ``OFFSET 0`` fence.
ULID_SQL = _base32("ms", 10) + " || " + _base32("r1", 12) + " || " + _base32("r2", 4)

#: Columns the filler gives their own value per decision (any other column copies the
#: template's). ``f.id`` is the filler's ULID, ``f.ts`` its time, ``f.g`` its number; the
#: document is the template's with its id replaced (``:doc0 || f.id || :doc1 ...``).
OWN = {
    "id": "f.id",
    "decision_id": "f.id",
    "received_at": "f.ts",
    "decided_at": "f.ts + interval '3 milliseconds'",
    "created_at": "f.ts",
    "idempotency_key": "md5('key' || f.g)",
    "application_id": "'LN-' || f.g",
    "request_hash": "md5('req' || f.g) || md5('hash' || f.g)",
    "subject_ref": "md5('subject' || f.g) || md5('ref' || f.g)",
    "key_id": "md5('key-id' || f.g)",
}


def document_sql(parts: int) -> str:
    """SQL of the filler's document: the template's ``parts`` around its id, joined by ours."""
    return " || f.id || ".join(f"CAST(:doc{i} AS text)" for i in range(parts))


def filler_select(columns: Sequence[str], where: str, doc_parts: int) -> str:
    """``SELECT`` of filler rows copied from the template row(s) matching ``where``."""
    own = {**OWN, "document": document_sql(doc_parts)}
    exprs = ", ".join(own.get(c, f't."{c}"') for c in columns)
    return (
        f"SELECT {exprs} FROM (SELECT * FROM {{table}} WHERE {where}) AS t CROSS JOIN ("
        f"  SELECT g, {ULID_SQL} AS id, to_timestamp(ms / 1000.0) AS ts FROM ("
        "    SELECT g, CAST(:t0_ms AS bigint) - CAST(:n AS bigint) - 1 + g AS ms,"
        "      ('x' || substr(md5('a' || g), 1, 15))::bit(60)::bigint AS r1,"
        "      ('x' || substr(md5('b' || g), 1, 5))::bit(20)::bigint AS r2"
        "    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g OFFSET 0"
        "  ) AS n OFFSET 0"
        ") AS f"
    )


# --- the filler ------------------------------------------------------------------------


@dataclass
class Fill:
    """What filling one schema took."""

    rows: int = 0  # decisions in the log after the fill (filler + template)
    seconds: float = 0.0  # insert + seal rows + rebuild indexes + analyze
    index_seconds: float = 0.0
    tables: dict[str, int] | None = None  # rows per filled table
    bytes: int = 0  # on-disk size of the filled tables, indexes included


def companion_tables(conn: sa.Connection, template_id: str) -> dict[str, str]:
    """Tables holding rows of the template decision: table -> ``WHERE`` clause."""
    found = {"decisions": "id = :template_id"}
    inspector = sa.inspect(conn)
    for table in inspector.get_table_names():
        if table in ("decisions", "decision_seals"):
            continue
        columns = {c["name"] for c in inspector.get_columns(table)}
        if "decision_id" not in columns:
            continue
        hit = conn.execute(
            sa.text(f'SELECT 1 FROM "{table}" WHERE decision_id = :d LIMIT 1'), {"d": template_id}
        ).first()
        if hit:
            found[table] = "decision_id = :template_id"
    if "decision_subjects" in found:  # a decision that is its own subject has its own key
        found["subject_keys"] = (
            "key_id IN (SELECT key_id FROM decision_subjects WHERE decision_id = :template_id)"
        )
    return found


def secondary_indexes(conn: sa.Connection, tables: Sequence[str]) -> list[tuple[str, str]]:
    """(name, definition) of the indexes of ``tables`` that back no constraint."""
    rows = conn.execute(
        sa.text(
            "SELECT i.indexname, i.indexdef FROM pg_indexes AS i"
            " WHERE i.schemaname = current_schema() AND i.tablename = ANY(:tables)"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c"
            "   WHERE c.conindid = (quote_ident(i.schemaname) || '.'"
            "   || quote_ident(i.indexname))::regclass)"
        ),
        {"tables": list(tables)},
    ).all()
    return [(r.indexname, r.indexdef) for r in rows]


SEALS_SQL = """
INSERT INTO decision_seals (seq, decision_id, record_hash, checkpoint_id)
SELECT row_number() OVER (ORDER BY id), id, md5('seal' || id) || md5('hash' || id),
       (row_number() OVER (ORDER BY id) - 1) / :batch + 1
FROM decisions
"""

CHECKPOINTS_SQL = """
INSERT INTO decision_checkpoints (id, first_seq, last_seq, merkle_root, prev_hash, sealed_at, hash)
SELECT c, (c - 1) * :batch + 1, least(c * :batch, :rows), md5('root' || c) || md5('r' || c),
       CASE WHEN c = 1 THEN :genesis ELSE md5('cp' || (c - 1)) || md5('h' || (c - 1)) END,
       to_char((now() - (:checkpoints - c) * interval '1 second') AT TIME ZONE 'UTC',
               'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
       md5('cp' || c) || md5('h' || c)
FROM generate_series(1, CAST(:checkpoints AS bigint)) AS c
"""


def fill_chunk(
    engine: sa.Engine, plan: dict[str, tuple[str, dict[str, Any]]], first: int, last: int
) -> float:
    """Filler decisions ``first`` to ``last`` in every table, in one transaction; seconds."""
    started = time.perf_counter()
    with engine.begin() as conn:
        # Foreign keys hold by construction (every companion row copies its decision's id);
        # replica role skips their per-row checks (the bench's own superuser session).
        conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        # lz4 compresses the filler's documents twice as fast as the default pglz, to
        # about the same size (the gateway's own rows keep the server's default).
        conn.execute(sa.text("SET LOCAL default_toast_compression = 'lz4'"))
        for statement, params in plan.values():
            conn.execute(sa.text(statement), {**params, "first": first, "last": last})
    return time.perf_counter() - started


#: Bytes on disk per logged decision, all its tables and indexes (a 4.5 KB document stored
#: compressed, its companions, seals): measured at 10^5 decisions, ~5.6 KB.
BYTES_PER_DECISION = 5_600


def check_disk(sizes: Sequence[int]) -> None:
    """Refuse to start when the database's disk cannot hold the logs (with 20 % to spare)."""
    need = int(sum(sizes) * BYTES_PER_DECISION * 1.2)
    with rve.disposing(sa.create_engine(rve.PG_URL)) as engine, engine.connect() as conn:
        data_dir = conn.execute(sa.text("SHOW data_directory")).scalar_one()
    try:
        free = shutil.disk_usage(data_dir).free
    except OSError:  # the server's folder is not ours to see: check ours
        free = shutil.disk_usage(tempfile.gettempdir()).free
    if free < need:
        raise SystemExit(
            f"the logs need ~{need / 1e9:.0f} GB and {free / 1e9:.0f} GB are free: "
            "choose smaller --sizes"
        )


def fill(engine: sa.Engine, template_id: str, size: int, jobs: int = 2) -> Fill:
    """Grow the log from its one template decision to ``size`` decisions, sealed.

    Chunks go to ``jobs`` connections at once (the database's cores do the work).
    """
    from gateway.integrity.chain import GENESIS
    from gateway.integrity.sealer import id_time

    result = Fill()
    n = size - 1
    t0_ms = int(id_time(template_id).timestamp() * 1000)
    started = time.perf_counter()
    with engine.begin() as conn:
        tables = companion_tables(conn, template_id)
        if conn.execute(sa.text("SELECT count(*) FROM decision_seals")).scalar_one():
            raise RuntimeError("the template decision is already sealed")
        indexes = secondary_indexes(conn, [*tables, "decision_seals"])
        for name, _ in indexes:
            conn.execute(sa.text(f'DROP INDEX "{name}"'))
        document = conn.execute(
            sa.text("SELECT document FROM decisions WHERE id = :id"), {"id": template_id}
        ).scalar_one()
        parts = str(document).split(template_id)
        plan: dict[str, tuple[str, dict[str, Any]]] = {}
        for table, where in tables.items():
            columns = [c["name"] for c in sa.inspect(conn).get_columns(table)]
            names = ", ".join(f'"{c}"' for c in columns)
            select = filler_select(columns, where, len(parts)).format(table=f'"{table}"')
            params: dict[str, Any] = {"template_id": template_id, "t0_ms": t0_ms, "n": n}
            if "document" in columns:
                params |= {f"doc{i}": part for i, part in enumerate(parts)}
            plan[table] = (f'INSERT INTO "{table}" ({names}) {select}', params)
    chunks = [(first, min(n, first + CHUNK - 1)) for first in range(1, n + 1, CHUNK)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        done = 0
        for (_, last), took in zip(
            chunks, pool.map(lambda c: fill_chunk(engine, plan, *c), chunks), strict=True
        ):
            done += last - _ + 1
            print(f"  filled {done:,} of {n:,} ({took:.1f} s for the chunk)", flush=True)
    with engine.begin() as conn:  # every row, the template too, sealed as a gateway would
        conn.execute(sa.text(SEALS_SQL), {"batch": SEAL_BATCH})
        checkpoints = -(-size // SEAL_BATCH)
        conn.execute(
            sa.text(CHECKPOINTS_SQL),
            {"batch": SEAL_BATCH, "rows": size, "checkpoints": checkpoints, "genesis": GENESIS},
        )
    index_started = time.perf_counter()
    print(f"  inserted and sealed in {index_started - started:.1f} s", flush=True)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(lambda d: run_ddl(engine, d), [d for _, d in indexes]))
    result.index_seconds = time.perf_counter() - index_started
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        filled = [*tables, "decision_seals", "decision_checkpoints"]
        # ANALYZE (the planner's statistics), not VACUUM: freshly inserted rows need no
        # cleaning, and rewriting every page for its hint bits would double a 10^7 fill.
        conn.execute(sa.text("ANALYZE " + ", ".join(f'"{t}"' for t in filled)))
        result.tables = {
            t: int(conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one())
            for t in filled
        }
        result.bytes = int(
            conn.execute(
                sa.text("SELECT sum(pg_total_relation_size(quote_ident(t)::regclass)) FROM"
                        " unnest(CAST(:t AS text[])) AS t"),
                {"t": list(result.tables)},
            ).scalar_one()
        )  # fmt: skip
    result.seconds = time.perf_counter() - started
    result.rows = result.tables["decisions"]
    return result


def count_unsealed(engine: sa.Engine) -> int:
    """Decisions without a seal (the filler is sealed, so: the bench's not yet sealed)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM decisions AS d WHERE NOT EXISTS"
                    " (SELECT 1 FROM decision_seals AS s WHERE s.decision_id = d.id)"
                )
            ).scalar_one()
        )


def run_ddl(engine: sa.Engine, statement: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(statement))


# --- one size ----------------------------------------------------------------------------


@contextmanager
def env(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` updated while inside (servers started then inherit it)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def template_decision(inst: rve.Instance, body: str) -> str:
    """One real decision, logged by a gateway without a sealer; its id."""
    with ExitStack() as stack, env({"LOANGATE_INTEGRITY__ENABLED": "false"}):
        base = rve.start_gateway(stack, inst, "WARNING")
        token = rve.token_getter(base, inst, 0)()
        resp = requests.post(
            base + rve.DECISIONS_PATH,
            data=body,
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": f"template-{uuid.uuid4().hex}",
            },
            timeout=30,
        )
        resp.raise_for_status()
        return str(resp.json()["decision_id"])


def prepare_size(
    stack: ExitStack, size: int, tmp: Path, body: str, duration: float
) -> tuple[rve.Target, Fill]:
    """A schema holding ``size`` decisions and a gateway serving it, as a wrk target."""
    folder = tmp / f"size-{size}"
    folder.mkdir()
    url = stack.enter_context(rve.database("postgresql", folder))
    inst = rve.prepare_instance(url, folder)
    engine = stack.enter_context(rve.disposing(gwdb.make_engine(url)))
    template_id = template_decision(inst, body)
    print(f"{size:,} decisions: filling", flush=True)
    filled = fill(engine, template_id, size)
    print(
        f"{size:,} decisions: {filled.rows:,} rows in {filled.seconds:.1f} s "
        f"({filled.bytes / 1e9:.2f} GB)",
        flush=True,
    )
    base = rve.start_gateway(stack, inst, "WARNING")
    target = rve.Target(
        label(size),
        base + rve.DECISIONS_PATH,
        folder / "gateway.lua",
        rve.token_getter(base, inst, duration + 5),
        engine=engine,
        template=IDEMPOTENT_LUA,
    )
    return target, filled


def label(size: int) -> str:
    exponent = len(str(size)) - 1
    return f"10^{exponent}" if size == 10**exponent else f"{size:,}"


# --- the report --------------------------------------------------------------------------


def table(targets: Sequence[rve.Target], fills: Sequence[Fill]) -> str:
    first = targets[0]
    lines = [
        "| decisions in the log | fill s | tables + indexes GB | c=8 req/s | c=8 p50 ms "
        "| c=8 p99 ms | c=1 p50 ms | c=1 p99 ms | c=8 req/s ÷ smallest | c=1 p50 ÷ smallest |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for target, filled in zip(targets, fills, strict=True):
        c8, c1 = target.results["c=8"], target.results["c=1"]
        cells = [
            f"{filled.rows:,}",
            f"{filled.seconds:.0f}",
            f"{filled.bytes / 1e9:.2f}",
            f"{statistics.fmean(r.rps for r in c8):,.0f}",
            f"{statistics.fmean(r.p50_ms for r in c8):.2f}",
            f"{statistics.fmean(r.p99_ms for r in c8):.2f}",
            f"{statistics.fmean(r.p50_ms for r in c1):.2f}",
            f"{statistics.fmean(r.p99_ms for r in c1):.2f}",
            rve.ratio_cell(rve.ratios(target, first, "c=8", "rps")),
            rve.ratio_cell(rve.ratios(target, first, "c=1", "p50_ms")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(targets: Sequence[rve.Target]) -> dict[str, float]:
    """The largest log against the smallest: throughput and single-client p50 ratios."""
    first, last = targets[0], targets[-1]
    return {
        "rps_ratio": statistics.fmean(rve.ratios(last, first, "c=8", "rps")),
        "p50_ratio": statistics.fmean(rve.ratios(last, first, "c=1", "p50_ms")),
        "p99_ratio": statistics.fmean(rve.ratios(last, first, "c=8", "p99_ms")),
    }


def section(
    args: argparse.Namespace,
    targets: Sequence[rve.Target],
    fills: Sequence[Fill],
    audit: rve.Audit,
    note: str,
    unsealed: Sequence[int],
) -> str:
    load1, load5, _ = os.getloadavg()
    v = verdict(targets)
    return "\n".join(
        [
            MARK,
            f"## Growth: the hot path with {targets[0].name} to {targets[-1].name} decisions "
            "in the log (PostgreSQL)",
            "",
            f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; command: "
            f"`.venv/bin/python bench/growth.py --sizes {args.sizes}`",
            f"- machine: {os.cpu_count()} CPUs, {rve.cpu_model()}, Python "
            f"{platform.python_version()}; load average at the end {load1:.2f} / {load5:.2f}",
            f"- database: {note}; one schema per size, each served by its own gateway "
            f"(gunicorn, {rve.WORKERS} sync workers, `LOANGATE_LOGGING__LEVEL=WARNING`, tamper "
            "evidence on)",
            "- the log: one real decision copied in SQL into every table a decision writes "
            "(decisions, reason codes, monitoring row, subject and data key), each copy with "
            "its own ULID, idempotency key, application id, request hash, subject and key, "
            "so every index holds one entry per decision; sealed into checkpoints of "
            f"{SEAL_BATCH:,} as a running gateway leaves it. Fill time includes rebuilding the "
            "secondary indexes and `ANALYZE`",
            f"- load: {rve.wrk_version()}, `-t2 -c8` (c=8) and `-t1 -c1` (c=1), "
            f"{args.duration:g} s per run, {args.rounds} rounds interleaving the sizes after a "
            f"{args.warmup:g} s warm-up each; German credit row 1 with a fresh "
            "`Idempotency-Key` per request (a key lookup, then the insert, on each unique "
            "index); ratios are to the smallest log in the same round (mean, and range)",
            "",
            table(targets, fills),
            "",
            f"Audit: {audit.answered} decisions answered, {audit.rows} rows added "
            f"({audit.cut_off} in flight when wrk stopped, at most {audit.max_cut_off}); "
            f"{audit.failures} responses with status ≥ 400 or socket errors. Decisions not "
            f"yet sealed 3 s after the last run, per size: {', '.join(map(str, unsealed))} "
            "(the bench's decisions are sealed by the gateways' own sealers, the filler "
            "before the start).",
            "",
            f"With {targets[-1].name} decisions in the log the gateway serves "
            f"{v['rps_ratio']:.2f}x the c=8 throughput it serves with {targets[0].name}, "
            f"at {v['p99_ratio']:.2f}x its c=8 p99 and {v['p50_ratio']:.2f}x its single-client "
            "p50. Every statement of a decision is an index lookup or an insert at the right "
            "edge of a B-tree (time-sorted ids, timestamps) or one random leaf (idempotency "
            "key, subject); the sealer reads only ids younger than its window. None of them "
            "scans the log, so its size reaches the hot path only through the cache: indexes "
            "that outgrow memory turn a lookup into a disk read.",
            "",
            "Sealing: the filler is sealed before the measured gateway starts (seals and "
            "chained checkpoints written in SQL, the last checkpoint dated at the end of the "
            "fill), so its sealer thread finds a head as after any long run and seals only "
            "the decisions of the bench; left unsealed, 10⁷ filler rows would have been "
            "sealed 10,000 per checkpoint in the background during the measurement (a first "
            "seal takes every unsealed row, whatever its age). The filler's record hashes "
            "are stand-ins: `verify` is not run on these schemas.",
            rve.END_MARKER,
        ]
    )


def parse_sizes(text: str) -> list[int]:
    return sorted({int(float(part)) for part in text.split(",") if part.strip()})


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="1e3,1e5,1e7", help="decisions in the log")
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per size")
    parser.add_argument("--doc", type=Path, default=rve.DOC, help="where to write the figures")
    parser.add_argument("--no-doc", action="store_true", help="print only")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """Fill, serve and load every size; 0 when the audit passed."""
    sizes = parse_sizes(args.sizes)
    check_disk(sizes)
    body = rve.sample_body()
    with tempfile.TemporaryDirectory(prefix="loangate-growth-") as tmp, ExitStack() as stack:
        prepared = [prepare_size(stack, size, Path(tmp), body, args.duration) for size in sizes]
        targets = [t for t, _ in prepared]
        fills = [f for _, f in prepared]
        engine = targets[0].engine
        assert engine is not None
        audit = rve.measure(targets, args, body, engine)
        note = rve.database_note("postgresql", engine)
        time.sleep(3)  # one seal interval (2 s) and a little
        unsealed = [count_unsealed(t.engine) for t in targets if t.engine is not None]
    print(f"unsealed decisions at the end, per size: {unsealed}")
    text = section(args, targets, fills, audit, note, unsealed)
    print("\n" + text)
    if args.json:
        doc = {
            "bench": "growth",
            **rve.run_facts(),
            "database": note,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "sizes": [
                {"size": size, "fill": asdict(f), "target": t.as_dict()}
                for size, t, f in zip(sizes, targets, fills, strict=True)
            ],
            "verdict": verdict(targets),
            "unsealed_at_end": unsealed,
            "audit": asdict(audit) | {"ok": audit.ok},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    if not args.no_doc:
        replace_section(args.doc, MARK, text, rve.INTRO)
        print(f"\nwritten to {args.doc}")
    if not audit.ok:
        print("AUDIT FAILED: see the figures above", file=sys.stderr)
    return 0 if audit.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    import signal

    signal.signal(signal.SIGTERM, rve._terminate)
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
