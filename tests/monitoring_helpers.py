"""Helpers of the monitoring tests: decisions logged through the batch path, a webhook receiver."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pandas as pd
from flask import Flask

from gateway.batch.decide import decide_frame
from gateway.monitoring.alerts import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.helpers import applicants

PIPELINE = "credit-risk"


def log_rows(app: Flask, rows: Sequence[dict[str, Any]], chunk: int = 5000) -> list[dict[str, Any]]:
    """Decide ``rows`` with the batch path (vectorised) and log them with their companion
    rows in one transaction per chunk, as a batch job does; the stored documents."""
    extras = app.extensions["loangate"].extras
    pipeline = extras["pipelines"][PIPELINE]
    personal = extras["personal_data"]
    engine = app.extensions["loangate"].engine
    stored: list[dict[str, Any]] = []
    for start in range(0, len(rows), chunk):
        frame = pd.DataFrame(list(rows[start : start + chunk]))
        decided = decide_frame(
            pipeline, frame, client_id="monitoring-test", protect=personal.protect_many
        )
        with engine.begin() as conn:
            extras["decision_log"].insert(
                conn, [d.row for d in decided], [d.document for d in decided]
            )
        stored.extend(d.document for d in decided)
    return stored


def sample(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` German credit applicants drawn with replacement."""
    rng = random.Random(seed)
    pool = applicants()
    return [dict(rng.choice(pool)) for _ in range(n)]


def shifted(n: int, seed: int, unseen_share: float = 0.2, missing_age: float = 0.3) -> list[dict]:
    """``n`` applicants with credit amounts x1.5, an unseen purpose on a share of them and
    the age missing on another share; every other field as drawn."""
    rng = random.Random(seed + 1)
    rows = sample(n, seed)
    for row in rows:
        row["credit_amount"] = round(row["credit_amount"] * 1.5)
        if rng.random() < unseen_share:
            row["purpose"] = "vacation"
        if rng.random() < missing_age:
            row["age_in_years"] = None
    return rows


@dataclass
class Received:
    """What the receiver got: one entry per POST, with its signature check."""

    posts: list[dict[str, Any]] = field(default_factory=list)
    fail_first: int = 0


@contextmanager
def webhook_receiver(secret: bytes, fail_first: int = 0) -> Iterator[tuple[str, Received]]:
    """A local HTTP receiver that checks signatures (answers 500 to the first
    ``fail_first`` posts); yields its URL and what it received."""
    received = Received(fail_first=fail_first)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            ok = verify(
                secret,
                self.headers.get(TIMESTAMP_HEADER, ""),
                body,
                self.headers.get(SIGNATURE_HEADER, ""),
            )
            received.posts.append(
                {"valid": ok, "body": json.loads(body), "headers": dict(self.headers)}
            )
            failing = received.fail_first > 0
            received.fail_first -= 1
            self.send_response(500 if failing else (204 if ok else 401))
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/loangate", received
    finally:
        server.shutdown()
        server.server_close()
