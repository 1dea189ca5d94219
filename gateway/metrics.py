"""Prometheus metrics at ``GET /metrics``: requests, stage latencies, outcomes, models.

Served in the Prometheus text format. Under gunicorn every worker process counts its
own requests; ``loangate serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder
of the instance so the workers' counts are summed on each scrape (prometheus_client's
multiprocess mode). Model gauges are read at scrape time from this process's pipelines,
so they show what a worker actually scores with; drift gauges (``loangate_drift``) from
the latest stored drift run (:mod:`gateway.monitoring`). ``metrics.bearer_token_env``
names an environment variable holding a token scrapers must send.

Label values are route rules, pipeline names, stage labels and outcomes: bounded sets,
never ids or personal values.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable, Mapping
from time import perf_counter
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from gateway.context import DecisionContext
from gateway.state import gateway_state

bp = Blueprint("metrics", __name__)

#: Latency buckets (seconds) around a governed decision's milliseconds.
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUESTS = Counter(
    "loangate_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "loangate_http_request_seconds", "Time to answer an HTTP request", ["route"], buckets=BUCKETS
)
STAGES = Histogram(
    "loangate_stage_seconds",
    "Time spent in a pipeline stage",
    ["pipeline", "stage"],
    buckets=BUCKETS,
)
DECISIONS = Counter(
    "loangate_decisions_total", "Decisions logged, by outcome", ["pipeline", "outcome"]
)
RATE_LIMITED = Counter(
    "loangate_rate_limited_total",
    "Requests refused with 429 by a client's rate limit (gateway.rate_limits)",
    ["store"],
)
RATE_LIMIT_STORE_ERRORS = Counter(
    "loangate_rate_limit_store_errors_total",
    "Rate-limit checks let through because the store could not be reached (fail open)",
    ["store"],
)


def observe_decision(ctx: DecisionContext, outcome: str) -> None:
    """Count a logged decision and its stages' times (cheap: a few in-memory updates)."""
    DECISIONS.labels(ctx.pipeline, outcome).inc()
    for stage in ctx.stages:
        STAGES.labels(ctx.pipeline, stage.stage).observe(stage.elapsed_ms / 1000.0)


class ModelCollector(Collector):
    """``loangate_model_info``: the model version each pipeline scores with, right now."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "loangate_model_info",
            "The model version a pipeline scores with (1), per worker process",
            labels=["pipeline", "role", "model", "version", "pid"],
        )
        pipelines: Mapping[str, Any] = gateway_state(self.app).extras["pipelines"]
        pid = str(os.getpid())
        for name, pipeline in sorted(pipelines.items()):
            ref = pipeline.scorer.describe().get("model")
            if ref:
                family.add_metric([name, "champion", ref["name"], str(ref["version"]), pid], 1)
            for shadow in pipeline.shadows:
                info = shadow.describe()
                if info["version"] is not None:
                    labels = [name, "shadow", info["model"], str(info["version"]), pid]
                    family.add_metric(labels, 1)
        yield family


class DriftCollector(Collector):
    """Drift gauges of the latest drift run per pipeline and model version (one query)."""

    STATISTICS = ("psi", "ks", "js", "null_rate_delta", "unseen_rate")

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from gateway.monitoring import runs

        family = GaugeMetricFamily(
            "loangate_drift",
            "Drift statistic of a feature (or the score) in the latest drift run",
            labels=["pipeline", "model", "version", "feature", "statistic"],
        )
        try:
            latest = runs.latest(gateway_state(self.app).engine, "drift")
        except Exception:  # the database is down: the other series still answer
            latest = []
        for run in latest:
            results = run["results"]
            entries = [*results.get("features", ()), *filter(None, [results.get("score")])]
            for entry in entries:
                for statistic in self.STATISTICS:
                    value = entry.get(statistic)
                    if isinstance(value, int | float):
                        labels = [run["pipeline"], run["model"], str(run["version"])]
                        family.add_metric([*labels, entry["feature"], statistic], float(value))
        yield family


def _registry(app: Flask) -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # every worker's counters, summed
    else:
        for metric in (REQUESTS, LATENCY, STAGES, DECISIONS, RATE_LIMITED, RATE_LIMIT_STORE_ERRORS):
            registry.register(metric)
    registry.register(ModelCollector(app))
    registry.register(DriftCollector(app))
    return registry


@bp.get("/metrics")
def metrics() -> Response:
    """The Prometheus exposition of this gateway (behind a bearer token if configured)."""
    state = gateway_state()
    token_env = state.config.get("metrics", {}).get("bearer_token_env")
    if token_env:
        expected = os.environ.get(token_env, "")
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            return Response("unauthorized\n", 401, {"WWW-Authenticate": "Bearer"})
    body = generate_latest(_registry(current_app._get_current_object()))  # type: ignore[attr-defined]
    return Response(body, 200, {"Content-Type": CONTENT_TYPE_LATEST})


def init_app(app: Flask) -> None:
    """Serve ``/metrics`` and count every request by route rule (not path: ids would
    explode the label set). Nothing is counted when ``metrics.enabled`` is false."""
    if not gateway_state(app).config.get("metrics", {}).get("enabled", True):
        return

    @app.after_request
    def _count(response: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        REQUESTS.labels(request.method, rule, str(response.status_code)).inc()
        started = g.get("started")  # set by gateway.logs when the request came in
        if started is not None:
            LATENCY.labels(rule).observe(perf_counter() - started)
        return response

    app.register_blueprint(bp)


def openapi_paths() -> dict[str, Any]:
    """The OpenAPI description of ``/metrics`` (merged by :mod:`gateway.api.openapi`)."""
    return {
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition format)",
                "tags": ["operations"],
                "description": "Optionally behind a static bearer token "
                "(metrics.bearer_token_env); see docs/operations.md.",
                "responses": {
                    "200": {
                        "description": "The metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": {"description": "The configured scrape token is missing or wrong"},
                },
            }
        }
    }
