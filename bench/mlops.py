"""Model operations under load: promotion while wrk runs, and what shadow scoring costs.

(a) **Promotion.** The gateway (4 workers) serves wrk at concurrency 8; five seconds in,
    a challenger is promoted through ``POST /v1/models/{name}/versions/{v}/stage``. A probe
    sends requests one after another and reads the model version of each answer; every
    worker is on the new version when a long run of answers (60) carries it. Reported: the
    time from the promotion to the last answer from the old version, and the failed
    requests during the run (wrk's status >= 400 and socket errors, the probe's).
(b) **Shadow cost.** Two gateways, one with the challenger in shadow, interleaved under
    wrk rounds (c=8 and c=1); reported: shadow-on / shadow-off ratios of throughput, p50
    and p99 in the same rounds, and the shadow rows written.

    .venv/bin/python bench/mlops.py [--db sqlite|postgresql] [--duration 10] [--rounds 3]

Writes both sections into ``docs/performance.md``. No figure is a pass/fail threshold.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import requests
import rest_vs_echo as rve  # the sibling bench module
import sqlalchemy as sa
from integrity import env
from report import END_MARKER, replace_section

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway import db as gwdb  # noqa: E402
from gateway.auth.clients import create_client  # noqa: E402
from gateway.registry import ModelRegistry  # noqa: E402
from gateway.training import train  # noqa: E402

MODEL = "german-credit"
PROMOTION_MARKER = "<!-- bench:promotion -->"
SHADOW_MARKER = "<!-- bench:shadow -->"
RUN_OF_NEW = 60


def register_challenger(inst: rve.Instance) -> tuple[int, str]:
    """Register another logistic version as challenger; (its version, an admin token's
    client credentials as 'id:secret')."""
    engine = gwdb.make_engine(inst.url)
    try:
        model = train(seed=7)
        info = ModelRegistry(engine, inst.models_dir).register(
            MODEL, model.estimator, model.metadata, kind="logistic", stage="challenger",
            created_by="bench",
        )  # fmt: skip
        client_id, secret = create_client(engine, "bench-admin", ["models:admin"])
    finally:
        engine.dispose()
    return info.version, f"{client_id}:{secret}"


def token(base: str, credentials: str) -> str:
    client_id, secret = credentials.split(":", 1)
    resp = requests.post(
        f"{base}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        timeout=10,
    )
    resp.raise_for_status()
    return str(resp.json()["access_token"])


def promotion(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    """(a): promote under wrk load; when every worker answered with the new version."""
    body = rve.sample_body()
    with ExitStack() as stack:
        url = stack.enter_context(rve.database(args.db, tmp))
        inst = rve.prepare_instance(url, tmp)
        version, admin = register_challenger(inst)
        with env("LOANGATE_WORKERS", "4"):
            rve.WORKERS = 4
            base = rve.start_gateway(stack, inst, "WARNING")
        getter = rve.token_getter(base, inst, args.duration + 10)
        target = rve.Target("gateway", base + rve.DECISIONS_PATH, tmp / "load.lua", getter)
        rve.run_wrk(target, rve.SCENARIOS[0], 2, body)  # warm up
        results: list[rve.WrkResult] = []
        load = threading.Thread(
            target=lambda: results.append(
                rve.run_wrk(target, rve.SCENARIOS[0], args.duration + 10, body)
            )
        )
        load.start()
        time.sleep(5)
        headers = {"Authorization": f"Bearer {getter()}", "Content-Type": "application/json"}
        admin_headers = {"Authorization": f"Bearer {token(base, admin)}"}
        promoted_at = time.monotonic()
        resp = requests.post(
            f"{base}/v1/models/{MODEL}/versions/{version}/stage",
            json={"stage": "champion", "reason": "bench"},
            headers=admin_headers,
            timeout=10,
        )
        resp.raise_for_status()
        last_old, run, probe_failures, probes = promoted_at, 0, 0, 0
        with requests.Session() as http:
            while run < RUN_OF_NEW and time.monotonic() < promoted_at + 60:
                answer = http.post(target.url, data=body, headers=headers, timeout=10)
                probes += 1
                if answer.status_code != 201:
                    probe_failures += 1
                    continue
                if answer.json()["model"]["version"] == version:
                    run += 1
                else:
                    run, last_old = 0, time.monotonic()
        load.join()
    wrk = results[0]
    return {
        "switch_s": last_old - promoted_at,
        "switched": run >= RUN_OF_NEW,
        "wrk_requests": wrk.requests,
        "wrk_failures": wrk.status_errors + wrk.socket_errors,
        "probe_requests": probes,
        "probe_failures": probe_failures,
        "refresh_s": 1.0,
    }


def shadow_cost(args: argparse.Namespace, tmp: Path) -> tuple[list[rve.Target], int]:
    """(b): interleaved wrk rounds against a gateway without and with a shadow."""
    body = rve.sample_body()
    rve.WORKERS = 2
    with ExitStack() as stack:
        targets, engines = [], []
        for name, shadow in (("shadow off", None), ("shadow on", "challenger")):
            folder = tmp / name.replace(" ", "-")
            folder.mkdir()
            url = stack.enter_context(rve.database(args.db, folder))
            inst = rve.prepare_instance(url, folder)
            register_challenger(inst)
            value = f"[{{model: {MODEL}, stage: {shadow}}}]" if shadow else "[]"
            with env("LOANGATE_PIPELINES__CREDIT-RISK__SHADOW", value):
                base = rve.start_gateway(stack, inst, "WARNING")
            getter = rve.token_getter(base, inst, args.duration + 5)
            targets.append(rve.Target(name, base + rve.DECISIONS_PATH, folder / "load.lua", getter))
            engines.append(stack.enter_context(rve.disposing(gwdb.make_engine(url))))
        audit = rve.measure(targets, args, body, engines[0])
        if audit.failures:
            raise SystemExit(f"{audit.failures} failed requests: see above")
        time.sleep(2)  # let the shadow queue drain
        with engines[1].connect() as conn:
            shadow_rows = conn.execute(sa.text("SELECT count(*) FROM shadow_scores")).scalar_one()
    return targets, int(shadow_rows)


def _ratio(on: Sequence[float], off: Sequence[float]) -> str:
    return rve.ratio_cell([a / b for a, b in zip(on, off, strict=True) if b])


def sections(args: argparse.Namespace, promo: dict[str, object], targets: list[rve.Target],
             shadow_rows: int) -> tuple[str, str]:  # fmt: skip
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{rve.cpu_model()}, {os.cpu_count()} cores"
    promo_text = "\n".join(
        [
            PROMOTION_MARKER,
            f"### Promotion under load ({args.db}, {when})",
            "",
            f"`bench/mlops.py --db {args.db}` on {machine}: 4 workers under wrk c=8, a "
            "challenger promoted five seconds in, a probe reading each answer's model version.",
            "",
            "| | |",
            "|---|---|",
            f"| every worker on the new version after | {promo['switch_s']:.2f} s "
            f"(refresh interval {promo['refresh_s']:.0f} s) |",
            f"| wrk requests during the run | {promo['wrk_requests']} |",
            f"| failed requests (wrk status ≥ 400 or socket errors) | {promo['wrk_failures']} |",
            f"| probe requests / failed | {promo['probe_requests']} / {promo['probe_failures']} |",
            END_MARKER,
        ]
    )
    off, on = targets
    rows = []
    for scenario in ("c=8", "c=1"):
        o, n = off.results[scenario], on.results[scenario]
        rows.append(
            f"| {scenario} | {_ratio([r.rps for r in n], [r.rps for r in o])} | "
            f"{_ratio([r.p50_ms for r in n], [r.p50_ms for r in o])} | "
            f"{_ratio([r.p99_ms for r in n], [r.p99_ms for r in o])} |"
        )
    shadow_text = "\n".join(
        [
            SHADOW_MARKER,
            f"### Shadow scoring cost ({args.db}, {when})",
            "",
            f"`bench/mlops.py --db {args.db}`: the same gateway with and without the "
            f"challenger in shadow, {args.rounds} interleaved rounds of {args.duration:.0f} s; "
            "shadow on / shadow off in the same round (mean over rounds, range). "
            f"{shadow_rows} shadow rows written.",
            "",
            "| load | throughput | p50 | p99 |",
            "|---|---|---|---|",
            *rows,
            "",
            "Reading: each worker's shadow thread gathers decided requests for up to half a "
            "second and writes their shadow rows in one commit, so the champion's commits "
            "seldom wait behind it; what remains is the shadow's CPU (one frame scored per "
            "batch) on the same cores.",
            END_MARKER,
        ]
    )
    return promo_text, shadow_text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="loangate-mlops-") as folder:
        tmp = Path(folder)
        (tmp / "promotion").mkdir()
        promo = promotion(args, tmp / "promotion")
        print(promo, flush=True)
        (tmp / "shadow").mkdir()
        targets, shadow_rows = shadow_cost(args, tmp / "shadow")
    promo_text, shadow_text = sections(args, promo, targets, shadow_rows)
    print(promo_text, shadow_text, sep="\n\n")
    if not args.no_doc:
        replace_section(rve.DOC, PROMOTION_MARKER, promo_text)
        replace_section(rve.DOC, SHADOW_MARKER, shadow_text)
    return 0 if promo["switched"] and not promo["wrk_failures"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
