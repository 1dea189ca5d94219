"""Per-request cost of the rate-limit check, per store, in microseconds.

What a request pays is one :meth:`acquire` of the client's budget. Timed here:

- the local store (a memory-mapped table under ``flock``) from one process, and from
  two processes hammering the same client at once (the lock contended, as under
  gunicorn's workers);
- the Redis store (one ``EVALSHA`` round trip on loopback), when Redis answers at
  ``--redis``.

Reported: the median of ``--rounds`` rounds, each the mean of ``--calls`` calls (a
budget large enough that every call is admitted and writes). Re-run::

    .venv/bin/python bench/rate_limits.py             # rewrites its section of docs/performance.md
    .venv/bin/python bench/rate_limits.py --no-write
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from report import replace_section  # the sibling bench module

from gateway.rate_limits import Limit, LocalStore, RedisStore

DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
START = "<!-- bench:rate-limits -->"
#: Never refuses within a bench run: every call reads and writes the client's TAT.
OPEN = Limit(rate=1e9, burst=1_000_000_000)


def per_call_us(
    acquire: Callable[[str, Limit], float], calls: int, rounds: int
) -> tuple[float, float]:
    """Median over rounds of the mean wall and CPU time (this process, kernel included)
    of one ``acquire``, in microseconds. The CPU figure holds on a busy machine."""
    walls, cpus = [], []
    keys = [f"client-{i}" for i in range(8)]
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(calls):
            acquire(keys[i % 8], OPEN)
        cpus.append((time.process_time() - cpu) / calls)
        walls.append((time.perf_counter() - wall) / calls)
    return statistics.median(walls) * 1e6, statistics.median(cpus) * 1e6


def cells(figures: tuple[float, float]) -> str:
    return f"{figures[0]:.1f} | {figures[1]:.1f}"


def _contend(path: str, calls: int, rounds: int, out: Any) -> None:
    store = LocalStore(Path(path))
    out.put(per_call_us(store.acquire, calls, rounds))


def local_contended(path: Path, calls: int, rounds: int, procs: int = 2) -> tuple[float, float]:
    """Per-call times of ``procs`` processes acquiring at once (the slowest of them)."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    workers = [
        ctx.Process(target=_contend, args=(str(path), calls, rounds, out)) for _ in range(procs)
    ]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join()
    return max(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rate-limits.bin"
        store = LocalStore(path)
        rows.append(
            ("local, one process", cells(per_call_us(store.acquire, args.calls, args.rounds)))
        )
        contended = local_contended(path, args.calls, args.rounds)
        rows.append(("local, two processes at once (the slower)", cells(contended)))
        store.close()
    prefix = f"loangate-bench:{uuid.uuid4().hex}:"
    try:
        remote = RedisStore(args.redis, prefix, timeout_ms=1000, retry_seconds=0)
        remote.client.ping()
        redis_us = per_call_us(remote.acquire, max(1, args.calls // 10), args.rounds)
        rows.append(("redis on loopback (one EVALSHA; CPU: the client's)", cells(redis_us)))
        for key in remote.client.scan_iter(f"{prefix}*"):
            remote.client.delete(key)
    except Exception as exc:  # no Redis here: report the local figures alone
        rows.append(("redis", f"not measured ({type(exc).__name__}) | -"))

    load = os.getloadavg()[0]
    cpu = platform.processor() or platform.machine()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        START,
        f"### Rate-limit check per request ({when})",
        "",
        f"`.venv/bin/python bench/rate_limits.py` on {cpu}, {os.cpu_count()} cores: one "
        "`acquire` of a client's budget (admitted, so it reads and writes the client's TAT), "
        f"median of {args.rounds} rounds of {args.calls} calls; load average {load:.1f} "
        "when it ran (wall time grows with it, CPU time much less).",
        "",
        "| store | µs per request (wall) | µs per request (CPU) |",
        "|---|---|---|",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
        "Reading: the local store is a thread lock, two `flock` system calls and a 24-byte "
        "read and write of a shared memory map (the key's hash is kept per client): a few "
        "microseconds of CPU, small beside a decision's milliseconds, so one host's workers "
        "share one budget rather than dividing it. The Redis store costs a round trip "
        "(more across a network) and the Redis server's CPU; on this shared 2-core machine "
        "the loopback round trip is mostly waiting for a core.",
        "<!-- /bench -->",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        replace_section(DOC, START, text)


if __name__ == "__main__":
    main()
