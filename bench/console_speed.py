"""How fast the console renders over a large log: the first page of a filtered search and
a decision page, with 1,000,000 decisions logged (PostgreSQL).

1. A fresh schema is filled as ``bench/growth.py`` fills it: one real decision copied in SQL
   into every table a decision writes, each copy with its own ids and keys, every index grown.
2. Twenty more real decisions (German credit rows 1-20, each outcome and reason code of the
   data) are made through the API of a gunicorn gateway (2 workers, the configured defaults):
   they are the newest, as the ones an auditor looks for usually are, and some filters match
   only them, so the search walks past the filler to find them.
3. A console user signs in over HTTP (``requests``: a real session cookie, a real CSRF form)
   and every page is fetched ``--repeat`` times after one warm-up: the time from sending the
   request to the last byte of the page, as a browser's navigation would see it without
   rendering. The figures are the median and the 95th percentile.

    .venv/bin/python bench/console_speed.py [--size 1000000] [--repeat 30]

Writes ``<!-- bench:console-speed -->`` in ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

import growth  # noqa: E402  (the sibling bench modules)
import rest_vs_echo as rve  # noqa: E402
from report import END_MARKER, replace_section  # noqa: E402

from gateway import db as gwdb  # noqa: E402

MARK = "<!-- bench:console-speed -->"

PASSWORD = "bench console password"
SEARCH_LIMIT_MS, DECISION_LIMIT_MS = 300.0, 100.0


def row_body(row: int, application_id: str) -> str:
    """A decision request for German credit row ``row``."""
    with rve.DATA.open(encoding="utf-8", newline="") as fh:
        found = list(csv.DictReader(fh))[row]
    found.pop("creditability")
    applicant = {k: int(v) if v.isdigit() else v for k, v in found.items()}
    return json.dumps({"application_id": application_id, "applicant": applicant})


def real_decisions(base: str, inst: rve.Instance, engine: sa.Engine) -> list[dict[str, Any]]:
    """Twenty real decisions through the API (the newest in the log)."""
    token = rve.token_getter(base, inst, 0)()
    made = []
    for row in range(1, 21):
        body = row_body(row, f"REAL-{row}")
        resp = requests.post(
            base + rve.DECISIONS_PATH,
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            timeout=30,
        )
        resp.raise_for_status()
        made.append(resp.json())
    return made


def signed_in(base: str) -> requests.Session:
    """A session of the bench's console user, signed in through the form."""
    http = requests.Session()
    form = http.get(f"{base}/console/sign-in", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token, "no CSRF field on the sign-in form"
    resp = http.post(
        f"{base}/console/sign-in",
        data={"csrf_token": token.group(1), "name": "bench", "password": PASSWORD},
        timeout=30,
    )
    resp.raise_for_status()
    if not resp.url.endswith("/console/decisions"):
        raise RuntimeError("sign-in failed")
    return http


def timed(http: requests.Session, url: str, repeat: int) -> dict[str, Any]:
    """Median and p95 of ``repeat`` fetches of ``url`` (after one warm-up), in ms."""
    first = http.get(url, timeout=60)
    first.raise_for_status()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        resp = http.get(url, timeout=60)
        _ = resp.content
        times.append((time.perf_counter() - started) * 1000)
        resp.raise_for_status()
    rows = first.text.count('href="/console/decisions/0')
    times.sort()
    return {
        "median": statistics.median(times),
        "p95": times[min(len(times) - 1, int(0.95 * len(times)))],
        "rows": rows,
        "bytes": len(first.content),
    }


def pages(made: list[dict[str, Any]], filler_id: str) -> list[tuple[str, str, str]]:
    """(kind, what, path) of every page measured."""
    outcomes = {d["outcome"] for d in made}
    reasons = sorted({r["code"] for d in made for r in d["reason_codes"]})
    since = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    real = made[0]["decision_id"]
    out = [
        ("search", "no filter (newest first)", "/console/decisions"),
        ("search", "pipeline", "/console/decisions?pipeline=credit-risk"),
        *[("search", f"outcome={o}", f"/console/decisions?outcome={o}") for o in sorted(outcomes)],
        ("search", f"reason_code={reasons[0]}", f"/console/decisions?reason_code={reasons[0]}"),
        ("search", "application_id (one match)", "/console/decisions?application_id=REAL-7"),
        ("search", "min_probability=0.9", "/console/decisions?min_probability=0.9"),
        ("search", "received in the last 10 minutes", f"/console/decisions?since={since}"),
        ("search", "sorted by probability", "/console/decisions?sort=probability"),
        (
            "search",
            "outcome and pipeline, oldest first",
            f"/console/decisions?outcome={sorted(outcomes)[0]}&pipeline=credit-risk&order=asc",
        ),
        ("decision", "a real decision", f"/console/decisions/{real}"),
        ("decision", "a decision of the filler", f"/console/decisions/{filler_id}"),
    ]
    return out


def section(results: list[dict[str, Any]], size: int, repeat: int, fill_s: float) -> str:
    """The ``console-speed`` section of docs/performance.md."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg()[:2])
    lines = [
        MARK,
        "## Console pages over 1,000,000 logged decisions (PostgreSQL)",
        "",
        f"- date: {now}; command: `.venv/bin/python bench/console_speed.py --size {size} "
        f"--repeat {repeat}`",
        f"- machine: {rve.cpu_model()}, 2 cores, Python {platform.python_version()}; "
        f"load average at the end {load} (1 / 5 min)",
        f"- the log: {size:,} decisions ({fill_s:.0f} s to fill as `bench/growth.py` does), "
        "the newest twenty real ones (German credit rows 1-20); a gunicorn gateway "
        "(2 sync workers, the configured defaults), an auditor-role user signed in over HTTP",
        f"- each page fetched {repeat} times after a warm-up: request sent to last byte "
        "received, on loopback",
        "",
        "| page | what | rows shown | KB | median ms | p95 ms | limit ms | within |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        limit = SEARCH_LIMIT_MS if r["kind"] == "search" else DECISION_LIMIT_MS
        ok = "yes" if r["p95"] < limit else "**no**"
        rows = r["rows"] if r["kind"] == "search" else ""
        lines.append(
            f"| {r['kind']} | {r['what']} | {rows} | {r['bytes'] / 1024:.0f} | "
            f"{r['median']:.1f} | {r['p95']:.1f} | {limit:.0f} | {ok} |"
        )
    worst = {k: max(r["p95"] for r in results if r["kind"] == k) for k in ("search", "decision")}
    lines += [
        "",
        f"Slowest first page of a search: {worst['search']:.1f} ms at p95 (limit 300 ms); "
        f"slowest decision page: {worst['decision']:.1f} ms (limit 100 ms).",
        END_MARKER,
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=float, default=1e6)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--no-write", action="store_true", help="print, do not edit the docs")
    args = parser.parse_args(argv)
    size = int(args.size)
    from gateway.console.users import create_user

    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="console-speed-") as tmp:
        folder = Path(tmp)
        url = stack.enter_context(rve.database("postgresql", folder))
        inst = rve.prepare_instance(url, folder)
        engine = stack.enter_context(rve.disposing(gwdb.make_engine(url)))
        template_id = growth.template_decision(inst, rve.sample_body())
        print(f"filling {size:,} decisions", flush=True)
        filled = growth.fill(engine, template_id, size)
        create_user(engine, "bench", "auditor", PASSWORD)
        base = rve.start_gateway(stack, inst, "WARNING")
        made = real_decisions(base, inst, engine)
        http = signed_in(base)
        results = []
        for kind, what, path in pages(made, template_id):
            figures = timed(http, base + path, args.repeat)
            results.append({"kind": kind, "what": what, **figures})
            print(
                f"{kind:8} {what:40} {figures['median']:8.1f} {figures['p95']:8.1f} ms "
                f"rows {figures['rows']}",
                flush=True,
            )
        text = section(results, size, args.repeat, filled.seconds)
    print(text)
    if not args.no_write:
        replace_section(ROOT / "docs" / "performance.md", MARK, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
