"""REST decision endpoint vs a plain Flask JSON echo, both under gunicorn, loaded with wrk.

One run, in a temporary folder:

1. set up an instance (SQLite, or a fresh schema in the local PostgreSQL ``test`` database),
   train and register the demo model, create an OAuth client;
2. start the gateway (``gateway.gunicorn_conf``, 2 workers) once per log level and the echo
   app (``bench/echo_app.py``) under the same gunicorn settings, on free loopback ports;
3. warm up, then measure every target with wrk at concurrency 8 (2 threads, 8 connections) and
   with a single client (1 thread, 1 connection), interleaving the targets round after round so
   the drift of a noisy machine hits them alike;
4. check that every answered decision is a row in ``decisions`` and that nothing failed;
5. print the table and write it into ``docs/performance.md`` between markers (and, with
   ``--json PATH``, every wrk run's raw figures, which ``bench/targets.py`` checks).

With ``--mlflow``, MLflow's scoring server (``bench/mlflow_serve.py``: a pinned MLflow in its
own virtualenv, the same scikit-learn pipeline) is one more target of the same rounds.

Ratios are gateway / echo of the same round: absolute figures move from run to run, the ratios
are what to compare. No figure here is a pass/fail threshold.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow_serve  # the sibling bench module
import requests
import sqlalchemy as sa
from report import END_MARKER, replace_section  # the sibling bench module

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
DATA = ROOT / "gateway" / "data" / "german_credit.csv"
PG_URL = os.environ.get("LOANGATE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DECISIONS_PATH = "/v1/pipelines/credit-risk/decisions"
ECHO_PATH = "/echo"
MLFLOW_NAME = "MLflow serve"
WORKERS = 2
#: Request threads per worker, for the gateway and the echo alike (``--threads``): 1 runs
#: sync workers, more runs gthread workers whose decisions share commits.
THREADS = 1
#: Gunicorn settings the echo shares with ``gateway/gunicorn_conf.py``.
GUNICORN_SHARED = ["--keep-alive", "5", "--timeout", "30", "--graceful-timeout", "20"]
#: wrk's done() hook prints one machine-readable line after this tag.
RESULT_TAG = "BENCH_RESULT "
#: The prototype's floor (FACTS.md): throughput and single-client p50 ratios to echo.
FLOOR = {
    "sqlite": (
        "SQLite insert + commit (WAL, synchronous=NORMAL)",
        "0.59-0.60",
        "~2x",
        " That floor committed with synchronous=NORMAL; this run commits with FULL (an fsync of"
        " the WAL per decision, the embedded default), so it pays the disk's fsync as well.",
    ),
    "postgresql": ("PostgreSQL insert, durable commit", "0.28-0.39", "~3-3.6x", ""),
}

INTRO = """\
# Performance

What is measured: the REST decision endpoint (`POST /v1/pipelines/credit-risk/decisions`:
bearer token check, validation, enrichment, scoring, explanation, policy and a durable write to
the decision log) against a plain Flask JSON echo (`bench/echo_app.py`) under the same
gunicorn settings (2 sync workers), both loaded with [wrk](https://github.com/wg/wrk) on
loopback, in the same run, interleaved.
The machine is noisy: read the **ratios** gateway / echo, not the absolute figures.

Re-run everything: `make bench` (= `bash bench/run.sh all`), which installs Debian's `wrk`
if it is missing, rewrites every marked section and the Targets section below. One bench:
`bash bench/run.sh --db postgresql --duration 10` (the header of `bench/run.sh` lists them).
No unit test is timed.
"""

LUA_TEMPLATE = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{tag}{{"requests":%d,"duration_us":%d,"status_errors":%d,"connect":%d,"read":%d,'
    .. '"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


# --- the load ---------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A wrk load shape."""

    name: str
    threads: int
    connections: int


SCENARIOS = (Scenario("c=8", 2, 8), Scenario("c=1", 1, 1))


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run reported."""

    requests: int
    duration_s: float
    status_errors: int  # responses with status >= 400
    socket_errors: int
    p50_ms: float
    p99_ms: float

    @property
    def answered(self) -> int:
        """Responses with a status below 400 (the gateway answers 201)."""
        return self.requests - self.status_errors

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s


@dataclass
class Target:
    """A server under load: its URL, its wrk script and its results per scenario."""

    name: str
    url: str
    script: Path
    token: Callable[[], str] | None = None  # a fresh bearer token per run (gateway only)
    results: dict[str, list[WrkResult]] = field(default_factory=dict)
    body: str | None = None  # its own request body (MLflow's), else the shared one
    engine: sa.Engine | None = None  # the database its decisions go to, else the run's
    template: str = LUA_TEMPLATE  # the wrk script, formatted with body, token and tag

    def as_dict(self) -> dict[str, Any]:
        """Its raw results, for ``bench/results/``."""
        return {
            "name": self.name,
            "url": self.url,
            "results": {
                name: [asdict(r) | {"rps": r.rps} for r in runs]
                for name, runs in self.results.items()
            },
        }


def sample_body() -> str:
    """The request body: application BENCH-1 with German credit row 1 (a risky applicant)."""
    with DATA.open(encoding="utf-8", newline="") as fh:
        row = list(csv.DictReader(fh))[1]
    row.pop("creditability")
    applicant = {k: int(v) if v.isdigit() else v for k, v in row.items()}
    return json.dumps({"application_id": "BENCH-1", "applicant": applicant})


def write_script(target: Target, body: str) -> None:
    """(Re)write the target's wrk Lua script, with a fresh token for the gateway."""
    token = target.token() if target.token else "none"
    target.script.write_text(
        target.template.format(
            body=target.body or body, token=token, tag=RESULT_TAG, run=uuid.uuid4().hex[:12]
        )
    )


def run_wrk(target: Target, scenario: Scenario, seconds: float, body: str) -> WrkResult:
    """One wrk run of ``scenario`` against ``target``."""
    write_script(target, body)
    cmd = [
        "wrk",
        f"-t{scenario.threads}",
        f"-c{scenario.connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-s",
        str(target.script),
        target.url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith(RESULT_TAG)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    raw = json.loads(line[len(RESULT_TAG) :])
    return WrkResult(
        requests=raw["requests"],
        duration_s=raw["duration_us"] / 1e6,
        status_errors=raw["status_errors"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
    )


# --- servers ----------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(cmd: Sequence[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A gunicorn master in its own process group, stopped (TERM, then KILL) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(cmd), env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield proc
    finally:
        stop_server(proc)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Graceful shutdown of the master and its workers; SIGKILL after 30 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def wait_ready(
    proc: subprocess.Popen[bytes], probe: Callable[[], bool], log: Path, timeout: float = 90
) -> None:
    """Wait until ``probe`` succeeds five times in a row (both workers up, most likely)."""
    deadline, streak = time.monotonic() + timeout, 0
    while streak < 5:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"server not ready:\n{log.read_text()[-3000:]}")
        try:
            streak = streak + 1 if probe() else 0
        except requests.RequestException:
            streak = 0
        time.sleep(0.1 if streak else 0.3)


def python_gunicorn() -> list[str]:
    return [sys.executable, "-m", "gunicorn"]


def start_gateway(stack: ExitStack, inst: Instance, level: str) -> str:
    """Start the gateway logging at ``level``; its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "LOANGATE_BIND": f"127.0.0.1:{port}",
        "LOANGATE_WORKERS": str(WORKERS),
        "LOANGATE_SERVER__THREADS": str(THREADS),
        "LOANGATE_DATABASE__URL": inst.url,
        "LOANGATE_MODELS__DIR": str(inst.models_dir),
        "LOANGATE_INSTANCE": str(inst.path),
        "LOANGATE_LOGGING__LEVEL": level,
    }
    cmd = [*python_gunicorn(), "-c", "python:gateway.gunicorn_conf", "gateway.wsgi:app"]
    log = inst.path / f"gateway-{level.lower()}.log"
    proc = stack.enter_context(server(cmd, env, log))
    base = f"http://127.0.0.1:{port}"
    wait_ready(proc, lambda: requests.get(f"{base}/readyz", timeout=2).ok, log)
    return base


def worker_kind() -> list[str]:
    """gunicorn's worker class (and threads) as ``gateway/gunicorn_conf.py`` picks them."""
    return ["-k", "gthread", "--threads", str(THREADS)] if THREADS > 1 else ["-k", "sync"]


def start_echo(stack: ExitStack, inst: Instance, body: str) -> str:
    """Start the echo app with the gateway's gunicorn settings; its base URL."""
    port = free_port()
    cmd = [
        *python_gunicorn(), "-w", str(WORKERS), *worker_kind(), "-b", f"127.0.0.1:{port}",
        *GUNICORN_SHARED, "--log-level", "warning", "--pythonpath", "bench", "echo_app:app",
    ]  # fmt: skip
    log = inst.path / "echo.log"
    proc = stack.enter_context(server(cmd, dict(os.environ), log))
    base = f"http://127.0.0.1:{port}"
    headers = {"Content-Type": "application/json"}
    wait_ready(
        proc,
        lambda: requests.post(f"{base}{ECHO_PATH}", data=body, headers=headers, timeout=2).ok,
        log,
    )
    return base


# --- the instance -----------------------------------------------------------------


@dataclass(frozen=True)
class Instance:
    """A prepared gateway instance: database, models, one OAuth client."""

    path: Path
    url: str
    models_dir: Path
    client_id: str
    client_secret: str


@contextmanager
def database(db: str, tmp: Path) -> Iterator[str]:
    """A migrated database URL: SQLite in ``tmp`` or a PostgreSQL schema dropped on exit."""
    from gateway import db as gwdb

    if db == "sqlite":
        url, schema = f"sqlite:///{tmp / 'loangate.db'}", None
    else:
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        run_admin(f'CREATE SCHEMA "{schema}"')
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    try:
        engine = gwdb.make_engine(url)
        gwdb.upgrade(engine)
        engine.dispose()
        yield url
    finally:
        if schema:
            run_admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run_admin(statement: str) -> None:
    """One statement on the PostgreSQL ``test`` database, committed."""
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(statement))
    admin.dispose()


def prepare_instance(url: str, tmp: Path) -> Instance:
    """Train and register the demo model as champion and create the bench client."""
    from gateway import db as gwdb
    from gateway.auth.clients import create_client
    from gateway.registry import ModelRegistry
    from gateway.training import train_and_register

    models_dir = tmp / "models"
    engine = gwdb.make_engine(url)
    try:
        train_and_register(ModelRegistry(engine, models_dir), stage="champion")
        client_id, secret = create_client(engine, "bench", ["decisions:create"])
    finally:
        engine.dispose()
    return Instance(tmp, url, models_dir, client_id, secret)


def token_getter(base: str, inst: Instance, seconds: float) -> Callable[[], str]:
    """A function that gets a fresh access token over HTTP, checking it outlives a run."""

    def get() -> str:
        resp = requests.post(
            f"{base}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": inst.client_id,
                "client_secret": inst.client_secret,
            },
            timeout=10,
        )
        resp.raise_for_status()
        doc = resp.json()
        if doc.get("expires_in", 1e9) < seconds + 5:
            raise RuntimeError(f"tokens live {doc['expires_in']} s: use a shorter --duration")
        return str(doc["access_token"])

    return get


def count_decisions(engine: sa.Engine) -> int:
    """Rows in ``decisions``, once requests cut off at the end of a run have committed."""
    previous = -1
    while True:
        with engine.connect() as conn:
            rows = int(conn.execute(sa.text("SELECT count(*) FROM decisions")).scalar_one())
        if rows == previous:
            return rows
        previous = rows
        time.sleep(0.3)


# --- the run ----------------------------------------------------------------------


@dataclass
class Audit:
    """Every gateway run's answered decisions against the rows it added to the log."""

    answered: int = 0
    rows: int = 0
    cut_off: int = 0  # rows beyond the answered: requests in flight when wrk stopped
    max_cut_off: int = 0  # at most one request in flight per connection per run
    failures: int = 0  # status >= 400 and socket errors, every target

    def add(self, result: WrkResult, rows: int, connections: int) -> None:
        self.answered += result.answered
        self.rows += rows
        self.cut_off += rows - result.answered
        self.max_cut_off += connections

    @property
    def ok(self) -> bool:
        return self.failures == 0 and 0 <= self.cut_off <= self.max_cut_off


def measure(
    targets: Sequence[Target], args: argparse.Namespace, body: str, engine: sa.Engine
) -> Audit:
    """Warm up, then the interleaved rounds; fills ``target.results``."""
    for target in targets:
        run_wrk(target, SCENARIOS[0], args.warmup, body)
    audit = Audit()
    for rnd in range(1, args.rounds + 1):
        for scenario in SCENARIOS:
            for target in targets:
                log_db = target.engine or engine
                before = count_decisions(log_db) if target.token else 0
                result = run_wrk(target, scenario, args.duration, body)
                target.results.setdefault(scenario.name, []).append(result)
                audit.failures += result.status_errors + result.socket_errors
                if target.token:
                    audit.add(result, count_decisions(log_db) - before, scenario.connections)
                print(
                    f"round {rnd} {scenario.name:<4} {target.name:<16} "
                    f"{result.rps:9.1f} req/s  p50 {result.p50_ms:7.3f} ms  "
                    f"p99 {result.p99_ms:7.3f} ms  requests {result.requests}  "
                    f"status>=400 {result.status_errors}  socket errors {result.socket_errors}",
                    flush=True,
                )
    return audit


# --- the report -------------------------------------------------------------------


def ratio_cell(values: Sequence[float]) -> str:
    """Mean of per-round ratios, with their range when there are several."""
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.2f}"
    return f"{mean:.2f} ({min(values):.2f}-{max(values):.2f})"


def ratios(target: Target, echo: Target, scenario: str, attr: str) -> list[float]:
    """Per-round gateway/echo ratios of one measure."""
    pairs = zip(target.results[scenario], echo.results[scenario], strict=True)
    return [getattr(t, attr) / getattr(e, attr) for t, e in pairs]


def results_table(targets: Sequence[Target], echo: Target) -> str:
    """The markdown table: means over rounds, ratios to echo of the same round."""
    lines = [
        "| load | target | req/s | p50 ms | p99 ms | req/s ÷ echo | p50 ÷ echo | p99 ÷ echo |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in SCENARIOS:
        for target in targets:
            runs = target.results[scenario.name]
            cells = [
                f"{statistics.fmean(r.rps for r in runs):,.0f}",
                f"{statistics.fmean(r.p50_ms for r in runs):.2f}",
                f"{statistics.fmean(r.p99_ms for r in runs):.2f}",
            ]
            if target is echo:
                cells += ["1", "1", "1"]
            else:
                cells += [
                    ratio_cell(ratios(target, echo, scenario.name, a))
                    for a in ("rps", "p50_ms", "p99_ms")
                ]
            lines.append(f"| {scenario.name} | {target.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else "unknown"


def wrk_version() -> str:
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return (out.stdout + out.stderr).split("\n")[0].split(" [")[0].strip()


def database_note(db: str, engine: sa.Engine) -> str:
    """How durable the commits of this run were."""
    if db == "sqlite":
        from gateway.config import load_config

        settings, _ = load_config()  # what the gateway reads, environment overrides included
        level = (settings.get("database") or {}).get("sqlite_synchronous") or "FULL"
        return f"SQLite file in WAL mode, `synchronous={level}` (the embedded default is FULL)"
    with engine.connect() as conn:
        settings = {
            name: conn.execute(sa.text(f"SHOW {name}")).scalar_one()
            for name in ("server_version", "synchronous_commit", "fsync")
        }
    return (
        f"local PostgreSQL {settings['server_version']} on the same cores, "
        f"`synchronous_commit={settings['synchronous_commit']}`, `fsync={settings['fsync']}`"
    )


def reading(db: str, targets: Sequence[Target], echo: Target) -> str:
    """A short comparison with the prototype's floor (FACTS.md), from the figures."""
    main = targets[1]
    tput = statistics.fmean(ratios(main, echo, "c=8", "rps"))
    p50 = statistics.fmean(ratios(main, echo, "c=1", "p50_ms"))
    what, floor_tput, floor_p50, caveat = FLOOR[db]
    text = (
        f"At c=8 the gateway ({main.name}) serves {tput:.2f}x the echo's throughput and a single "
        f'client sees {p50:.1f}x its p50. The prototype\'s floor in FACTS.md ("+ {what}") '
        f"was {floor_tput} of echo throughput and {floor_p50} its single-client p50; "
    )
    low = float(floor_tput.split("-")[0])
    if tput < low:
        text += f"this run is {low / tput:.1f}x further from echo than that floor."
    else:
        text += "this run is at or above that floor."
    text += caveat
    by_name = {t.name: t for t in targets}
    info = by_name.get("gateway INFO")
    if info is not None and info is not main:
        info_tput = statistics.fmean(ratios(info, echo, "c=8", "rps"))
        text += (
            f" With the access log on ({info.name}, one JSON line per request) the c=8 "
            f"throughput ratio is {info_tput:.2f}."
        )
    mlflow = by_name.get(MLFLOW_NAME)
    if mlflow is not None:
        over = statistics.fmean(ratios(main, mlflow, "c=8", "rps"))
        text += (
            f" Beside {MLFLOW_NAME} (MLflow {mlflow_serve.MLFLOW_VERSION}, `mlflow models serve "
            f"-w {mlflow_serve.WORKERS} --env-manager local`, the same scikit-learn pipeline, "
            f"one applicant as `dataframe_split`) the gateway serves {over:.1f}x MLflow's c=8 "
            "throughput, while also checking a token, validating, deriving, explaining, "
            "applying the policy and durably logging each decision, where MLflow only scores."
        )
    return text


def section(args: argparse.Namespace, targets: Sequence[Target], audit: Audit, db_note: str) -> str:
    """The doc section of this run, markers included."""
    echo = targets[0]
    command = shlex.join(["bash", "bench/run.sh", *sys.argv[1:]])
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load1, load5, _ = os.getloadavg()
    title = "SQLite" if args.db == "sqlite" else "PostgreSQL"
    parts = [
        f"<!-- bench:rest-vs-echo:{args.db} -->",
        f"## REST decision vs Flask echo — {title}",
        "",
        f"- date: {date}; command: `{command}`",
        f"- machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
        f"{cpu_model()}, Python {platform.python_version()}, load average at the end "
        f"{load1:.2f} / {load5:.2f} (1 / 5 min)",
        f"- database: {db_note}",
        f"- servers: gunicorn, {WORKERS} "
        + (f"gthread workers x {THREADS} threads" if THREADS > 1 else "sync workers")
        + " each; gateway with "
        "`-c python:gateway.gunicorn_conf`, echo with the same keep-alive and timeouts; "
        "`LOANGATE_LOGGING__LEVEL=WARNING` drops the per-request access line, `INFO` (the "
        "configured default) writes it to a file",
        f"- load: {wrk_version()} on loopback, `-t2 -c8` (c=8) and `-t1 -c1` (c=1), "
        f"{args.duration:g} s per run, {args.rounds} interleaved rounds (echo, gateway, … per "
        f"load), after a {args.warmup:g} s warm-up each; the same JSON body (German credit row "
        f"1, {len(sample_body().encode())} bytes) and headers to every target; figures are "
        "means over rounds, ratios are per round (mean, and range)",
        "",
        results_table(targets, echo),
        "",
        f"Audit: {audit.answered} decisions answered (status < 400) by wrk, {audit.rows} rows "
        f"added to `decisions` during those runs ({audit.cut_off} more: requests still in "
        f"flight when wrk stopped, at most {audit.max_cut_off}); {audit.failures} responses "
        "with status ≥ 400 or socket errors.",
        "",
        reading(args.db, targets, echo),
        END_MARKER,
    ]
    return "\n".join(parts)


def write_doc(path: Path, db: str, text: str) -> None:
    """Replace this backend's section in ``path`` (or append it), keeping the others."""
    replace_section(path, f"<!-- bench:rest-vs-echo:{db} -->", text, INTRO)


# --- main -------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per target")
    parser.add_argument(
        "--log-levels",
        default="WARNING,INFO",
        help="gateway log levels to measure, comma-separated (the first one is the headline)",
    )
    parser.add_argument("--doc", type=Path, default=DOC, help="where to write the figures")
    parser.add_argument("--no-doc", action="store_true", help="print only")
    parser.add_argument(
        "--mlflow",
        action="store_true",
        help=f"also load MLflow {mlflow_serve.MLFLOW_VERSION}'s scoring server "
        "(bench/mlflow_serve.py)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument(
        "--threads",
        type=int,
        default=THREADS,
        help="request threads per worker, gateway and echo alike (1: sync workers)",
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """The whole benchmark; 0 when the audit passed."""
    global THREADS
    THREADS = args.threads
    body = sample_body()
    levels = [lvl.strip().upper() for lvl in args.log_levels.split(",") if lvl.strip()]
    with tempfile.TemporaryDirectory(prefix="loangate-bench-") as tmp, ExitStack() as stack:
        url = stack.enter_context(database(args.db, Path(tmp)))
        inst = prepare_instance(url, Path(tmp))
        echo = Target("echo", start_echo(stack, inst, body) + ECHO_PATH, Path(tmp, "echo.lua"))
        targets = [echo]
        for level in levels:
            base = start_gateway(stack, inst, level)
            name = f"gateway {level}"
            script = Path(tmp, f"gateway-{level.lower()}.lua")
            getter = token_getter(base, inst, args.duration + 5)
            targets.append(Target(name, base + DECISIONS_PATH, script, getter))
        if args.mlflow:
            model = mlflow_serve.save_model(Path(tmp, "mlflow-model"))
            url_ml = mlflow_serve.start(stack, model, Path(tmp, "mlflow.log"))
            ml_body = mlflow_serve.invocation_body()
            targets.append(Target(MLFLOW_NAME, url_ml, Path(tmp, "mlflow.lua"), body=ml_body))
        engine = stack.enter_context(disposing(sa.create_engine(url)))
        audit = measure(targets, args, body, engine)
        note = database_note(args.db, engine)
    text = section(args, targets, audit, note)
    print("\n" + text)
    if args.json:
        write_json(args.json, args, targets, audit, note)
    if not args.no_doc:
        write_doc(args.doc, args.db, text)
        print(f"\nwritten to {args.doc}")
    if not audit.ok:
        print("AUDIT FAILED: see the figures above", file=sys.stderr)
    return 0 if audit.ok else 1


def write_json(
    path: Path, args: argparse.Namespace, targets: Sequence[Target], audit: Audit, note: str
) -> None:
    """The run's raw figures: every wrk run of every target, the audit, the settings."""
    doc = {
        "bench": "rest-vs-echo",
        **run_facts(),
        "db": args.db,
        "database": note,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "targets": [t.as_dict() for t in targets],
        "audit": asdict(audit) | {"ok": audit.ok},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def run_facts() -> dict[str, Any]:
    """When and where: date, machine, load, tools (for every raw result file)."""
    load1, load5, _ = os.getloadavg()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk_version(),
        "load": [round(load1, 2), round(load5, 2)],
        "command": shlex.join(sys.argv),
    }


@contextmanager
def disposing(engine: sa.Engine) -> Iterator[sa.Engine]:
    """Dispose of ``engine`` on exit."""
    try:
        yield engine
    finally:
        engine.dispose()


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds the stack: servers stop, the schema is dropped


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    sys.path.insert(0, str(ROOT))
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
