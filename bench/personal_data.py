"""Cost of personal-data protection per decision: sealing on write, opening or masking on read.

Times, on a realistic decision document of the credit-risk pipeline (two personal fields,
each in ``application`` and ``features``, plus the subject field):

- ``protect`` for a returning subject (its key in the process cache: no round trip);
- ``protect`` for a new subject (one INSERT + commit of its wrapped key), on SQLite
  (WAL, synchronous=FULL, the embedded default) and on PostgreSQL (durable commit);
- reading one stored document: masked (no key needed) and opened with ``pii:read``
  (one SELECT of its key), beside plain ``orjson.loads`` + ``dumps`` of the same bytes.

Reported: medians of ``--n`` single calls. Re-run::

    .venv/bin/python bench/personal_data.py            # rewrites its section of docs/performance.md
    .venv/bin/python bench/personal_data.py --no-write
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from report import replace_section  # the sibling bench module

from gateway import db, ids
from gateway.decision_log import DecisionLog
from gateway.personal import PersonalData
from gateway.personal.crypto import MasterKeys, new_key

DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
START = "<!-- bench:personal-data -->"
PG_URL = os.environ.get("LOANGATE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PERSONAL = frozenset({"age_in_years", "telephone", "customer_id"})
PROTECTED = frozenset({"personal_status_and_sex", "foreign_worker"})


class _Pipeline:
    """Stands in for a built pipeline: only its input schema's classes are read."""

    def input_schema(self) -> dict[str, Any]:
        classes = {f: "personal" for f in PERSONAL} | {f: "protected" for f in PROTECTED}
        return {"properties": {f: {"x-class": c} for f, c in classes.items()}}


def document(customer: str) -> dict[str, Any]:
    """A decision document shaped like the gateway's (20 fields in, 21 features)."""
    application: dict[str, Any] = {f"field_{i}": f"A{i}" for i in range(15)}
    application |= {
        "customer_id": customer,
        "age_in_years": 41,
        "telephone": "none",
        "personal_status_and_sex": "male : single",
        "foreign_worker": "yes",
    }
    return {
        "decision_id": ids.new_id(),
        "pipeline": "credit-risk",
        "decided_at": datetime.now(UTC).isoformat(),
        "status": "decided",
        "outcome": "refer",
        "probability_of_default": 0.41,
        "explanation": {"contributions": {f"field_{i}": 0.01 * i for i in range(15)}},
        "imputations": [{"field": "telephone", "value": "none", "strategy": "constant"}],
        "enrichments": [],
        "application": application,
        "features": {**application, "credit_per_month": 124.0},
    }


def median_us(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def service(url: str) -> PersonalData:
    engine = db.make_engine(url, sqlite_synchronous="FULL")
    db.upgrade(engine)
    master = MasterKeys("bench", {"bench": new_key()})
    settings = {"subject_field": "customer_id"}
    return PersonalData(engine, master, new_key(), settings, {"credit-risk": _Pipeline()})


def measure(url: str, n: int) -> dict[str, float]:
    personal = service(url)
    returning = document("CUST-RETURNING")
    personal.protect(returning)  # key created and cached
    counter = iter(range(10**9))
    stored = orjson.dumps(personal.protect(returning))
    engine = personal.engine

    def select_one() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def insert_commit() -> None:  # the shape of the key INSERT, without the crypto
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO subject_erasures (id, subject_ref, erased_at, erased_by, reason,"
                    " keys_destroyed, decisions) VALUES (:id, 'r', :at, 'b', 'bench', 0, 0)"
                ),
                {"id": ids.new_id(), "at": datetime.now(UTC)},
            )

    attached = service(url)
    attached.attach(DecisionLog(attached.engine))

    def own_subject() -> None:
        doc = document("")
        del doc["application"]["customer_id"], doc["features"]["customer_id"]
        attached.companion(attached.protect(doc))  # the key row goes with the decision

    out = {
        "select": median_us(select_one, n),
        "own": median_us(own_subject, n),
        "insert": median_us(insert_commit, n),
        "returning": median_us(lambda: personal.protect(returning), n),
        "new": median_us(lambda: personal.protect(document(f"CUST-{next(counter)}")), n),
        "plain_read": median_us(lambda: orjson.dumps(orjson.loads(stored)), n),
        "masked": median_us(lambda: personal.reveal_payloads([stored], False), n),
        "opened": median_us(lambda: personal.reveal_payloads([stored], True), n),
    }
    personal.engine.dispose()
    attached.engine.dispose()
    return out


def schema_for_pg() -> tuple[str, Callable[[], None]]:
    """A fresh PostgreSQL schema for the bench, and how to drop it."""
    name = f"bench_pii_{os.getpid()}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {name}"))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {name} CASCADE"))
        admin.dispose()

    return f"{PG_URL}?options=-csearch_path%3D{name}", drop


def render(results: dict[str, dict[str, float]], n: int) -> str:
    rows = [
        ("reference: one `SELECT 1` round trip", "select"),
        ("reference: one INSERT + commit", "insert"),
        ("seal (returning subject, key cached)", "returning"),
        ("seal (new subject: + INSERT of its key)", "new"),
        ("seal (no subject field: key row written with the decision)", "own"),
        ("read: `orjson` loads + dumps only (reference)", "plain_read"),
        ("read without `pii:read` (masked)", "masked"),
        ("read with `pii:read` (one key SELECT, decrypt)", "opened"),
    ]
    lines = [
        START,
        "## Personal data: sealing on write, opening or masking on read",
        "",
        f"`bench/personal_data.py`, {datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, "
        f"median of {n} calls, microseconds per decision document; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (absolute figures move with it,"
        " the ratios to the reference rows are what matter).",
        "",
        "| step | " + " | ".join(results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for label, key in rows:
        lines.append(
            f"| {label} | " + " | ".join(f"{r[key]:,.0f}" for r in results.values()) + " |"
        )
    lines += [
        "",
        "A returning applicant's key comes from the process cache, so sealing costs only the",
        "AES-GCM work (tens of microseconds, about as much as building the document). A new",
        "applicant adds a SELECT that misses, then an INSERT and a durable commit of the wrapped",
        "key, before the decision's own commit: a second fsync, which roughly doubles the",
        "log-write cost of that decision. A decision without a subject field is its own subject",
        "and new by construction, so its key row is written in the decision's own transaction",
        "(a decision-log companion): no extra round trip or commit. A batch chunk gets all its",
        "new keys in one INSERT (`PersonalData.protect_many`). Reading costs a parse and a",
        "re-serialisation (masked), plus one SELECT of the keys of the page (`pii:read`).",
        "<!-- /bench -->",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["SQLite (FULL)"] = measure(f"sqlite:///{tmp}/bench.db", args.n)
    url, drop = schema_for_pg()
    try:
        results["PostgreSQL"] = measure(url, args.n)
    finally:
        drop()
    text = render(results, args.n)
    print(text)
    if not args.no_write:
        replace_section(DOC, START, text)


if __name__ == "__main__":
    main()
