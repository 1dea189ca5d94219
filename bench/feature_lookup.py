"""Feature table: load rate and point-in-time lookup cost, on SQLite and PostgreSQL.

Usage: ``.venv/bin/python bench/feature_lookup.py [--entities N] [--changes N] [--lookups N]``

Loads ``entities x changes`` rows (one change a month per entity, four typed features) as one
version through :class:`gateway.features.FeatureStore`, then times ``lookup`` (the enricher's
one query per request) at random entities and times, one call at a time. PostgreSQL is
``LOANGATE_TEST_PG`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``), in a
schema of its own that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import perf_counter

import sqlalchemy as sa

from gateway import db
from gateway.features import FeatureSchema, FeatureStore

PG_URL = os.environ.get("LOANGATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
SCHEMA = FeatureSchema(
    "customer_id",
    "valid_from",
    {
        "tenure_months": {"type": "integer"},
        "segment": {"type": "string"},
        "avg_balance": {"type": "number"},
        "products_held": {"type": "integer"},
    },
)


def rows(entities: int, changes: int) -> list[dict[str, object]]:
    rng = random.Random(7)
    return [
        {
            "customer_id": f"C-{e:07d}",
            "valid_from": EPOCH + timedelta(days=30 * c),
            "tenure_months": c,
            "segment": rng.choice(["retail", "premium"]),
            "avg_balance": rng.uniform(0, 10_000),
            "products_held": rng.randint(1, 5),
        }
        for e in range(entities)
        for c in range(changes)
    ]


def run(url: str, label: str, args: argparse.Namespace) -> None:
    engine = db.make_engine(url)
    db.upgrade(engine)
    store = FeatureStore(engine)
    data = rows(args.entities, args.changes)
    chunks = [data[i : i + 5000] for i in range(0, len(data), 5000)]
    started = perf_counter()
    store.load("bench", chunks, SCHEMA)
    load_s = perf_counter() - started
    rng = random.Random(11)
    times = []
    for _ in range(args.lookups):
        entity = f"C-{rng.randrange(args.entities):07d}"
        when = EPOCH + timedelta(days=rng.uniform(-10, 30 * args.changes))
        t0 = perf_counter()
        store.lookup("bench", entity, when)
        times.append((perf_counter() - t0) * 1000)
    times.sort()
    print(
        f"{label:<10} load {len(data):>7} rows {load_s:6.2f} s ({len(data) / load_s:8.0f} rows/s)"
        f"  lookup p50 {statistics.median(times):.3f} ms"
        f"  p99 {times[int(len(times) * 0.99)]:.3f} ms"
    )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--lookups", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{Path(tmp) / 'bench.db'}", "sqlite", args)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        run(f"{PG_URL}?options=-csearch_path%3D{schema}", "postgresql", args)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
