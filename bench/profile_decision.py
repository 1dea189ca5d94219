"""Where the time of one REST decision goes, in process (no HTTP server, no network).

Builds a gateway on a fresh SQLite (or PostgreSQL) database with the demo model, then posts
``--requests`` decisions through Flask's test client under cProfile and prints the mean time
per request and the functions that take it, grouped by part of the path (auth, decode,
pipeline, record, log write, Flask). The WSGI server and the network are not included: wrk
measures those (``bench/rest_vs_echo.py``).

    .venv/bin/python bench/profile_decision.py [--db sqlite|postgresql] [--requests 2000]
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway import create_app, db  # noqa: E402
from gateway.auth.clients import create_client  # noqa: E402
from gateway.registry import ModelRegistry  # noqa: E402
from gateway.training import train  # noqa: E402

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def body() -> bytes:
    with (ROOT / "gateway" / "data" / "german_credit.csv").open() as fh:
        row = list(csv.DictReader(fh))[1]
    row.pop("creditability")
    applicant = {k: int(v) if v.isdigit() else v for k, v in row.items()}
    return json.dumps({"application_id": "BENCH-1", "applicant": applicant}).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="loangate-profile-"))
    url = f"sqlite:///{tmp / 'gw.db'}" if args.db == "sqlite" else PG_URL
    schema = None
    if args.db == "postgresql":
        import uuid

        import sqlalchemy as sa

        schema = f"profile_{uuid.uuid4().hex[:8]}"
        eng = sa.create_engine(url)
        with eng.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        eng.dispose()
        url = f"{url}?options=-csearch_path%3D{schema}"
    engines: list[Any] = []  # disposed before the schema is dropped
    try:
        trained = train()
        eng = db.make_engine(url)
        engines.append(eng)
        db.upgrade(eng)
        ModelRegistry(eng, tmp / "models").register(
            "german-credit",
            trained.estimator,
            trained.metadata,
            kind=trained.kind,
            stage="champion",
            created_by="profile",
        )
        app = create_app(
            {"database": {"url": url}, "models": {"dir": str(tmp / "models")}},
            instance_path=tmp / "instance",
        )
        engines.append(app.extensions["loangate"].engine)
        client = app.test_client()
        client_id, secret = create_client(eng, "profile", ["decisions:create"])
        token = client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
        ).get_json()["access_token"]
        headers: dict[str, Any] = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
        }
        payload = body()
        path = "/v1/pipelines/credit-risk/decisions"
        for _ in range(200):  # warm up
            assert client.post(path, data=payload, headers=headers).status_code == 201
        start = time.perf_counter()
        for _ in range(args.requests):
            client.post(path, data=payload, headers=headers)
        plain = (time.perf_counter() - start) / args.requests
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.requests):
            client.post(path, data=payload, headers=headers)
        prof.disable()
        print(f"mean per request, unprofiled: {plain * 1000:.3f} ms ({args.db})")
        stats = pstats.Stats(prof)
        if args.top:
            stats.sort_stats("cumulative").print_stats(args.top)
            stats.sort_stats("tottime").print_stats(args.top)
        print(breakdown(stats, plain))
    finally:
        for engine in engines:
            engine.dispose()
        if schema is not None:  # the PostgreSQL schema of this run
            admin = sa.create_engine(PG_URL)
            with admin.begin() as conn:
                conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()


#: Parts of the path: (label, [(file suffix, function name)]) whose cumulative times add up.
PARTS = (
    ("bearer token check", [("gateway/auth/resource.py", "authenticate")]),
    ("pipeline: validate, enrich, score, explain, policy", [("gateway/pipeline.py", "run")]),
    (
        "record: document, sealed personal fields",
        [("gateway/record.py", "build_document"), ("gateway/personal/service.py", "protect")],
    ),
    ("log write: rows, inserts (commit excluded)", [("gateway/decision_log.py", "append")]),
)
COMMIT = "<method 'commit' of 'sqlite3.Connection' objects>"
WSGI = ("flask/app.py", "wsgi_app")


def _cumulative(stats: pstats.Stats, suffix: str, func: str) -> float:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    return sum(
        v[3] for (path, _line, name), v in raw.items() if path.endswith(suffix) and name == func
    )


def breakdown(stats: pstats.Stats, mean_s: float) -> str:
    """A table of where a request's time goes: share of the profiled total, and that share
    of the unprofiled mean (the profiler slows Python code more than C code: approximate)."""
    total = _cumulative(stats, *WSGI)
    commit = _cumulative(stats, "~", COMMIT)
    rows = []
    accounted = 0.0
    for label, funcs in PARTS:
        part = sum(_cumulative(stats, f, n) for f, n in funcs)
        if label.startswith("log write"):
            part -= commit
        accounted += part
        rows.append((label, part))
    rows.append(("commit (the WAL's fsync on SQLite)", commit))
    rows.append(("Flask, routing, request and response, access log", total - accounted - commit))
    lines = ["| part | share | ~ms of the mean |", "|---|---|---|"]
    for label, part in rows:
        share = part / total if total else 0.0
        lines.append(f"| {label} | {share:.0%} | {share * mean_s * 1000:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
