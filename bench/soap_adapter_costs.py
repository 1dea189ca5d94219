"""The SOAP adapter's own per-request cost, in process: parse, deserialise, write the response.

Decides German credit row 1 once through the REST route of an in-process gateway (fresh SQLite,
the demo model) to get a real decision document, then times, on the SOAP 1.1 envelope of the
same application, each step the SOAP path adds over REST's JSON in and out
(:func:`soap_vs_rest.adapter_costs`): the hardened parse, the
application read directly (``adapters/soap/decode.py``) beside the same through zeep's
deserialiser, and the response written by the renderer compiled from the WSDL beside the same
response through zeep's serializer. Several rounds; the median per step is
printed. Each round times every step in turn, so a busy moment of the shared machine
falls on all of them: compare the steps of one run, not runs.

    .venv/bin/python bench/soap_adapter_costs.py [--rounds 7] [--repeat 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rest_vs_echo as rve  # the sibling bench module
import soap_vs_rest as svr  # the sibling bench module

sys.path.insert(0, str(rve.ROOT))

STEPS = (
    ("parse", "parse the envelope (hardened lxml)"),
    ("decode", "read the application (direct reader)"),
    ("decode_zeep", "read the application (zeep's deserialiser, as before)"),
    ("response", "write the response (renderer compiled from the WSDL)"),
    ("response_zeep", "write the response (zeep's serializer, as before)"),
    ("json", "REST: JSON in and out (orjson)"),
)


def decision_document(tmp: Path) -> dict[str, Any]:
    """A real decision document: German credit row 1 decided through the REST route."""
    from gateway import create_app, db
    from gateway.auth.clients import create_client
    from gateway.registry import ModelRegistry
    from gateway.training import train

    url = f"sqlite:///{tmp / 'gw.db'}"
    trained = train()
    engine = db.make_engine(url)
    db.upgrade(engine)
    ModelRegistry(engine, tmp / "models").register(
        "german-credit", trained.estimator, trained.metadata, kind=trained.kind,
        stage="champion", created_by="bench",
    )  # fmt: skip
    app = create_app(
        {"database": {"url": url}, "models": {"dir": str(tmp / "models")}},
        instance_path=tmp / "instance",
    )
    client = app.test_client()
    client_id, secret = create_client(engine, "bench", ["decisions:create"])
    token = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    ).get_json()["access_token"]
    resp = client.post(
        rve.DECISIONS_PATH,
        data=rve.sample_body(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    if resp.status_code != 201:
        raise RuntimeError(f"the sample was not decided: {resp.status_code} {resp.text}")
    document: dict[str, Any] = resp.get_json()
    engine.dispose()
    return document


def measure(document: dict[str, Any], rounds: int, repeat: int) -> dict[str, list[float]]:
    """Per step, the milliseconds per call of each round."""
    found: dict[str, list[float]] = {name: [] for name, _ in STEPS}
    for _ in range(rounds):
        costs = svr.adapter_costs(document, repeat)
        for name, _ in STEPS:
            found[name].append(costs[name])
    return found


def report(found: dict[str, list[float]], contributions: int) -> str:
    load1, _, _ = os.getloadavg()
    lines = [
        f"per request, median of {len(found['parse'])} rounds (range); a decision with "
        f"{contributions} contributions; load average {load1:.2f} on {os.cpu_count()} CPUs",
        "",
        "| step | ms |",
        "|---|---:|",
    ]
    for name, label in STEPS:
        runs = found[name]
        lines.append(
            f"| {label} | {statistics.median(runs):.3f} ({min(runs):.3f}-{max(runs):.3f}) |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=1000, help="calls per step and round")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="loangate-soap-costs-") as tmp:
        document = decision_document(Path(tmp))
    found = measure(document, args.rounds, args.repeat)
    contributions = len((document.get("explanation") or {}).get("contributions", {}))
    print(report(found, contributions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
