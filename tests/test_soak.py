"""Soak: wrk posts real decisions to a gunicorn gateway (2 workers, SQLite) for
``LOANGATE_SOAK_SECONDS`` (default 12) while the RSS of every worker is sampled each second.

Passes when wrk saw no non-2xx answer and no socket error, every answered request is a row in
the decision log, no worker was replaced, and each worker's memory is flat after warm-up. The
long run (figures in docs/performance.md, "Soak"):
``LOANGATE_SOAK_SECONDS=600 .venv/bin/pytest -m soak -s tests/test_soak.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway import db
from tests.conftest import IN_CI
from tests.helpers import body
from tests.servers import running_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.soak]

SECONDS = float(os.environ.get("LOANGATE_SOAK_SECONDS", "12"))
WARMUP = 0.25  # the first quarter of the run: imports, caches and pools fill up
THREADS, CONNECTIONS = 1, 4  # leaves the CPU to the 2 workers on a small machine
#: Flat memory: a worker's RSS may grow by this much from the end of warm-up to the end.
#: 16 MiB is a few SQLite page caches and allocator slack, yet a leak of 1 KiB per request
#: would pass it within ~16,000 decisions: a few minutes of the long run.
MAX_GROWTH_BYTES = 16 * 1024 * 1024
RESULT_TAG = "SOAK_RESULT "

LUA = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"

local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) non2xx = 0 end
function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("non2xx") end
  local e = summary.errors
  io.write(string.format(
    '{tag}{{"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,'
    .. '"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}}\\n',
    summary.requests, summary.duration, bad, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (a gunicorn master's workers), from /proc."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return sorted(int(p) for p in text.split())


def rss_bytes(pid: int) -> int | None:
    """The resident set size of ``pid`` (VmRSS), or ``None`` if it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class RssSampler(threading.Thread):
    """Samples the RSS of every worker of a gunicorn master once a second."""

    def __init__(self, master: int) -> None:
        super().__init__(daemon=True)
        self.master = master
        self.samples: dict[int, list[tuple[float, int]]] = {}  # pid -> [(t, rss)]
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(1.0):
            now = time.monotonic()
            for pid in children(self.master):
                rss = rss_bytes(pid)
                if rss is not None:
                    self.samples.setdefault(pid, []).append((now, rss))


@pytest.fixture
def wrk() -> Iterator[str]:
    """The wrk binary (``bash bench/run.sh`` installs Debian's package)."""
    found = shutil.which("wrk")
    if found is None:
        if IN_CI:
            pytest.fail("the soak test needs wrk (apt-get install wrk)")
        pytest.skip("wrk is not installed (apt-get install wrk)")
    yield found


def settled_count(engine: sa.Engine) -> int:
    """Rows in ``decisions`` once requests cut off at the end of the run have committed."""
    previous = -1
    while True:
        with engine.connect() as conn:
            rows = int(conn.execute(sa.text("SELECT count(*) FROM decisions")).scalar_one())
        if rows == previous:
            return rows
        previous = rows
        time.sleep(0.5)


def median_rss(samples: list[tuple[float, int]], start: float, end: float) -> int:
    """The median RSS of the samples taken in [start, end]."""
    window = [rss for t, rss in samples if start <= t <= end]
    assert window, "no RSS sample in the window"
    return int(statistics.median(window))


def nearest_rss(samples: list[tuple[float, int]], at: float) -> int:
    """The RSS sample taken nearest to ``at``."""
    return min(samples, key=lambda sample: abs(sample[0] - at))[1]


def test_soak_under_wrk(
    wrk: str, tmp_path: Path, trained_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'loangate.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    # Tokens must outlive the run: wrk sends one token throughout.
    monkeypatch.setenv("LOANGATE_AUTH__TOKEN_TTL_SECONDS", str(int(max(300, SECONDS + 120))))
    with running_server(url, tmp_path, trained_model, workers=2) as srv:
        script = tmp_path / "soak.lua"
        payload = json.dumps(body(1, application_id="SOAK-1"))
        script.write_text(
            LUA.format(body=payload, token=srv.token("decisions:create"), tag=RESULT_TAG)
        )
        workers = children(srv.proc.pid)
        assert len(workers) == 2, workers
        sampler = RssSampler(srv.proc.pid)
        sampler.start()
        started = time.monotonic()
        try:
            out = subprocess.run(
                [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{round(SECONDS)}s", "--timeout",
                 "30s", "-s", str(script), f"{srv.base}/v1/pipelines/credit-risk/decisions"],
                capture_output=True, text=True, timeout=SECONDS + 120, check=True,
            ).stdout  # fmt: skip
        finally:
            ended = time.monotonic()
            sampler.halt.set()
            sampler.join()
        assert children(srv.proc.pid) == workers, "a worker was replaced during the run"
        rows = settled_count(engine)
    engine.dispose()

    line = next((ln for ln in out.splitlines() if ln.startswith(RESULT_TAG)), None)
    assert line is not None, out
    result = json.loads(line[len(RESULT_TAG) :])
    socket_errors = sum(result[k] for k in ("connect", "read", "write", "timeout"))
    assert result["non2xx"] == 0, result
    assert socket_errors == 0, result
    # Every answer is logged; a request wrk cut off at the end may be logged unanswered.
    assert result["requests"] > 0
    assert result["requests"] <= rows <= result["requests"] + CONNECTIONS, (result, rows)
    log = srv.log.read_text(errors="replace")
    assert "Traceback" not in log and "WORKER TIMEOUT" not in log, log[-2000:]

    # Memory: the median of the last tenth of the run against the median just before the
    # end of warm-up (medians, so one sample taken mid-garbage-collection does not decide).
    warm = started + WARMUP * (ended - started)
    tail = max(3.0, 0.1 * (ended - started))
    memory: dict[int, dict[str, Any]] = {}
    for pid in workers:
        samples = sampler.samples.get(pid, [])
        at_warm = median_rss(samples, warm - tail, warm)
        at_end = median_rss(samples, ended - tail, ended)
        memory[pid] = {
            "rss_warm_mib": round(at_warm / 2**20, 1),
            "rss_end_mib": round(at_end / 2**20, 1),
            "rss_max_mib": round(max(r for _, r in samples) / 2**20, 1),
            "growth_mib": round((at_end - at_warm) / 2**20, 2),
            # the RSS at the end of each tenth of the run, to show a trend at a glance
            "rss_by_tenth_mib": [
                round(nearest_rss(samples, started + k / 10 * (ended - started)) / 2**20, 1)
                for k in range(1, 11)
            ],
        }
    print(
        "\n"
        + RESULT_TAG
        + json.dumps(
            {
                "seconds": round(result["duration_us"] / 1e6, 1),
                "requests": result["requests"],
                "rps": round(result["requests"] / (result["duration_us"] / 1e6), 1),
                "non2xx": result["non2xx"],
                "socket_errors": socket_errors,
                "logged": rows,
                "p50_ms": result["p50_us"] / 1000,
                "p99_ms": result["p99_us"] / 1000,
                "workers": memory,
            }
        )
    )
    for pid, figures in memory.items():
        assert figures["growth_mib"] * 2**20 < MAX_GROWTH_BYTES, (pid, figures)
