"""SOAP (1.1 and 1.2) decisions beside REST decisions, same gateway, same run, loaded with wrk.

Reuses ``bench/rest_vs_echo.py`` for everything but the request: the instance (database, demo
model, OAuth client), the gateway under gunicorn, token fetching, the wrk result format and the
audit of answered decisions against logged rows. Each target posts German credit row 1 with the
same bearer token: REST as JSON, SOAP as a ``ScoreApplication`` envelope (SOAPAction for 1.1,
the ``action`` parameter for 1.2). Targets are interleaved round after round; ratios are to
REST in the same round. Writes its own section of ``docs/performance.md``
(``<!-- bench:soap-vs-rest -->``), leaving the others as they are.

    .venv/bin/python bench/soap_vs_rest.py [--db sqlite|postgresql] [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rest_vs_echo as rve  # the sibling bench module
from report import replace_section  # the sibling bench module

START_MARKER = "<!-- bench:soap-vs-rest -->"
SOAP_PATH = "/soap/credit-risk"
TNS = "urn:loangate:soap:credit-risk"
ACTION = f"{TNS}/ScoreApplication"
ENVELOPES = {
    "1.1": "http://schemas.xmlsoap.org/soap/envelope/",
    "1.2": "http://www.w3.org/2003/05/soap-envelope",
}

LUA = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = [==[{content_type}]==]
{extra}wrk.headers["Authorization"] = "Bearer {token}"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{tag}{{"requests":%d,"duration_us":%d,"status_errors":%d,"connect":%d,"read":%d,'
    .. '"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class Request:
    """One target's request: what wrk posts, and where."""

    name: str
    url: str
    body: str
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    results: dict[str, list[rve.WrkResult]] = field(default_factory=dict)


def soap_body(version: str) -> str:
    """A ``ScoreApplication`` envelope for the REST sample's application."""
    doc = json.loads(rve.sample_body())
    fields = "".join(f"<lg:{k}>{escape(str(v))}</lg:{k}>" for k, v in doc["applicant"].items())
    return (
        f'<s:Envelope xmlns:s="{ENVELOPES[version]}" xmlns:lg="{TNS}"><s:Body>'
        f"<lg:ScoreApplication><lg:applicationId>{doc['application_id']}</lg:applicationId>"
        f"<lg:applicant>{fields}</lg:applicant></lg:ScoreApplication></s:Body></s:Envelope>"
    )


def requests_for(base: str) -> list[Request]:
    return [
        Request("REST (JSON)", base + rve.DECISIONS_PATH, rve.sample_body(), "application/json"),
        Request(
            "SOAP 1.1", base + SOAP_PATH, soap_body("1.1"), "text/xml; charset=utf-8",
            {"SOAPAction": f'"{ACTION}"'},
        ),
        Request(
            "SOAP 1.2", base + SOAP_PATH, soap_body("1.2"),
            f'application/soap+xml; charset=utf-8; action="{ACTION}"',
        ),
    ]  # fmt: skip


def run_wrk(req: Request, scenario: rve.Scenario, seconds: float, token: str, tmp: Path) -> Any:
    """One wrk run of ``scenario`` posting ``req``."""
    extra = "".join(f'wrk.headers["{k}"] = [==[{v}]==]\n' for k, v in req.headers.items())
    script = tmp / f"{re.sub(r'[^a-z0-9]+', '-', req.name.lower())}.lua"
    script.write_text(
        LUA.format(
            body=req.body, content_type=req.content_type, extra=extra, token=token,
            tag=rve.RESULT_TAG,
        )
    )  # fmt: skip
    cmd = [
        "wrk", f"-t{scenario.threads}", f"-c{scenario.connections}",
        f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script), req.url,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith(rve.RESULT_TAG)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    raw = json.loads(line[len(rve.RESULT_TAG) :])
    return rve.WrkResult(
        requests=raw["requests"],
        duration_s=raw["duration_us"] / 1e6,
        status_errors=raw["status_errors"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
    )


def measure(
    reqs: Sequence[Request], args: argparse.Namespace, token: Any, engine: sa.Engine, tmp: Path
) -> rve.Audit:
    """Warm-up, then interleaved rounds; every target decides, so every run is audited."""
    for req in reqs:
        run_wrk(req, rve.SCENARIOS[0], args.warmup, token(), tmp)
    audit = rve.Audit()
    for rnd in range(1, args.rounds + 1):
        for scenario in rve.SCENARIOS:
            for req in reqs:
                before = rve.count_decisions(engine)
                result = run_wrk(req, scenario, args.duration, token(), tmp)
                req.results.setdefault(scenario.name, []).append(result)
                audit.failures += result.status_errors + result.socket_errors
                audit.add(result, rve.count_decisions(engine) - before, scenario.connections)
                print(
                    f"round {rnd} {scenario.name:<4} {req.name:<12} {result.rps:9.1f} req/s  "
                    f"p50 {result.p50_ms:7.3f} ms  p99 {result.p99_ms:7.3f} ms  "
                    f"status>=400 {result.status_errors}  socket errors {result.socket_errors}",
                    flush=True,
                )
    return audit


def table(reqs: Sequence[Request]) -> str:
    rest = reqs[0]
    lines = [
        "| load | target | req/s | p50 ms | p99 ms | req/s ÷ REST | p50 ÷ REST | p99 ÷ REST |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in rve.SCENARIOS:
        for req in reqs:
            runs = req.results[scenario.name]
            cells = [
                f"{statistics.fmean(r.rps for r in runs):,.0f}",
                f"{statistics.fmean(r.p50_ms for r in runs):.2f}",
                f"{statistics.fmean(r.p99_ms for r in runs):.2f}",
            ]
            for attr in ("rps", "p50_ms", "p99_ms"):
                pairs = zip(runs, rest.results[scenario.name], strict=True)
                cells.append(
                    rve.ratio_cell([getattr(a, attr) / getattr(b, attr) for a, b in pairs])
                )
            lines.append(f"| {scenario.name} | {req.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def adapter_costs(document: dict[str, Any], repeat: int = 2000) -> dict[str, Any]:
    """Milliseconds per request of the SOAP adapter's own steps, measured in process."""
    import dataclasses

    import orjson

    from adapters.soap.adapter import SoapBinding, decision_value
    from adapters.soap.xml import envelope, parse
    from gateway.components import Services
    from gateway.config import DEFAULT_CONFIG_FILE
    from plugins.validators.schema import SchemaValidator

    services = Services(DEFAULT_CONFIG_FILE.parent, Path(tempfile.gettempdir()), None)  # type: ignore[arg-type]
    schema = SchemaValidator({"schema": "schemas/credit-application.yaml"}, services)
    binding = SoapBinding.build("credit-risk", schema.input_schema())
    body, json_body = soap_body("1.1").encode(), rve.sample_body().encode()
    env = envelope(parse(body))
    zeep_only = dataclasses.replace(binding, reader=None)

    def per_call(step: Any) -> float:
        started = time.perf_counter()
        for _ in range(repeat):
            step()
        return (time.perf_counter() - started) / repeat * 1000

    return {
        "parse": per_call(lambda: envelope(parse(body))),
        "decode": per_call(lambda: binding.decode_application(env)),
        # the same application through zeep's deserialiser, as every request was read before
        "decode_zeep": per_call(lambda: zeep_only.decode_application(env)),
        "response": per_call(lambda: binding.response("1.1", "ScoreApplication", document)),
        # the same envelope through zeep's serializer, as every response was written before
        "response_zeep": per_call(
            lambda: binding.zeep_response("1.1", "ScoreApplication", decision_value(document))
        ),
        "json": per_call(lambda: (orjson.loads(json_body), orjson.dumps(document))),
        "contributions": len((document.get("explanation") or {}).get("contributions", {})),
    }


def section(
    args: argparse.Namespace,
    reqs: Sequence[Request],
    audit: rve.Audit,
    note: str,
    costs: dict[str, Any],
) -> str:
    command = shlex.join([".venv/bin/python", "bench/soap_vs_rest.py", *sys.argv[1:]])
    load1, load5, _ = os.getloadavg()
    soap11 = reqs[1].results
    tput = statistics.fmean(
        a.rps / b.rps for a, b in zip(soap11["c=8"], reqs[0].results["c=8"], strict=True)
    )
    p50 = statistics.fmean(
        a.p50_ms / b.p50_ms for a, b in zip(soap11["c=1"], reqs[0].results["c=1"], strict=True)
    )
    return "\n".join(
        [
            START_MARKER,
            "## SOAP decisions beside REST decisions",
            "",
            f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; command: `{command}`",
            f"- machine: {os.cpu_count()} CPUs, {rve.cpu_model()}, Python "
            f"{platform.python_version()}, load average at the end {load1:.2f} / {load5:.2f}",
            f"- database: {note}",
            f"- server: one gateway, gunicorn with {rve.WORKERS} sync workers "
            "(`-c python:gateway.gunicorn_conf`), `LOANGATE_LOGGING__LEVEL=WARNING`",
            f"- load: {rve.wrk_version()} on loopback, `-t2 -c8` (c=8) and `-t1 -c1` (c=1), "
            f"{args.duration:g} s per run, {args.rounds} interleaved rounds after a "
            f"{args.warmup:g} s warm-up each; German credit row 1 as JSON "
            f"({len(reqs[0].body)} bytes) and as a SOAP envelope ({len(reqs[1].body)} bytes), "
            "the same bearer token; ratios are to REST in the same round (mean, and range)",
            "",
            table(reqs),
            "",
            f"Audit: {audit.answered} decisions answered, {audit.rows} rows added to "
            f"`decisions` ({audit.cut_off} in flight when wrk stopped, at most "
            f"{audit.max_cut_off}); {audit.failures} responses with status ≥ 400 or socket "
            "errors.",
            "",
            f"SOAP 1.1 serves {tput:.2f}x REST's throughput at c=8 and a single client sees "
            f"{p50:.2f}x REST's p50. In process, per request, the SOAP adapter adds "
            f"{costs['parse']:.3f} ms to parse the envelope (hardened lxml), "
            f"{costs['decode']:.3f} ms to read the application directly "
            f"({costs['decode_zeep']:.3f} ms through zeep's deserialiser) and "
            f"{costs['response']:.3f} ms to write the response (a decision with "
            f"{costs['contributions']} contributions) with the renderer compiled from the "
            f"WSDL ({costs['response_zeep']:.3f} ms through zeep's serializer), against "
            f"{costs['json']:.3f} ms for REST's JSON in and out."
            + (
                f" The load average ({load1:.1f}) was above the {os.cpu_count()} cores: other "
                "work shared the machine, so the absolute figures are low; compare ratios."
                if load1 > (os.cpu_count() or 1)
                else ""
            ),
            rve.END_MARKER,
        ]
    )


def write_doc(path: Path, text: str) -> None:
    """Replace this bench's section of ``path`` (or append it), keeping the others."""
    replace_section(path, START_MARKER, text, rve.INTRO)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per target")
    parser.add_argument("--doc", type=Path, default=rve.DOC, help="where to write the figures")
    parser.add_argument("--no-doc", action="store_true", help="print only")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """The whole benchmark; 0 when the audit passed."""
    with tempfile.TemporaryDirectory(prefix="loangate-soap-bench-") as tmp, ExitStack() as stack:
        url = stack.enter_context(rve.database(args.db, Path(tmp)))
        inst = rve.prepare_instance(url, Path(tmp))
        base = rve.start_gateway(stack, inst, "WARNING")
        token = rve.token_getter(base, inst, args.duration + 5)
        reqs = requests_for(base)
        engine = stack.enter_context(rve.disposing(sa.create_engine(url)))
        audit = measure(reqs, args, token, engine, Path(tmp))
        note = rve.database_note(args.db, engine)
        with engine.connect() as conn:  # a real decision document, for the in-process costs
            stored = conn.execute(
                sa.text("SELECT document FROM decisions WHERE status_code = 201 LIMIT 1")
            ).scalar_one()
    costs = adapter_costs(json.loads(stored))
    text = section(args, reqs, audit, note, costs)
    print("\n" + text)
    if args.json:
        doc = {
            "bench": "soap-vs-rest",
            **rve.run_facts(),
            "db": args.db,
            "database": note,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "targets": [
                {"name": r.name, "url": r.url, "results": {
                    name: [asdict(x) | {"rps": x.rps} for x in runs]
                    for name, runs in r.results.items()
                }}
                for r in reqs
            ],
            "adapter_costs_ms": costs,
            "audit": asdict(audit) | {"ok": audit.ok},
        }  # fmt: skip
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    if not args.no_doc:
        write_doc(args.doc, text)
        print(f"\nwritten to {args.doc}")
    if not audit.ok:
        print("AUDIT FAILED: see the figures above", file=sys.stderr)
    return 0 if audit.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, rve._terminate)
    sys.path.insert(0, str(rve.ROOT))
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
