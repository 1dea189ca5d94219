"""Monitoring alerts and where they go: a structured log line, signed webhooks, plugins.

Every finding at or above ``monitoring.alerts.min_severity`` becomes an :class:`Alert`.
Sinks: a ``monitoring_alert`` log line (names and figures only: never a personal value),
each configured webhook (one JSON POST per run holding its alerts), and the
``monitoring_alert`` hook of plugins (:mod:`gateway.hookspecs`).

Webhook signature: ``X-Loangate-Signature: sha256=<hex>`` is
``HMAC-SHA256(secret, "<X-Loangate-Timestamp>." + body)`` over the exact body bytes;
the receiver recomputes it, compares in constant time, and refuses a timestamp older
than a few minutes (replays). The secret comes from the environment variable named by
``secret_env``. Delivery is retried with exponential backoff on a connection error, a
timeout, 429 or 5xx; another 4xx is final.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson
import requests
import structlog

from gateway import ids
from gateway.monitoring.checks import SEVERITIES
from gateway.outbound.retry import RetryPolicy

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-Loangate-Signature"
TIMESTAMP_HEADER = "X-Loangate-Timestamp"
DELIVERY_HEADER = "X-Loangate-Delivery"
EVENT = "monitoring.alert"


@dataclass(frozen=True)
class Alert:
    """A drift, performance or fairness finding worth telling someone about."""

    kind: str  # drift | performance | fairness
    pipeline: str
    model: str
    version: int
    subject: str  # the feature, "score", "model", or "<attribute>=<group>"
    statistic: str
    value: float
    threshold: float
    severity: str  # warn | alert
    run_id: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value of ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance_seconds: float = 300,
    now: float | None = None,
) -> bool:
    """True if ``signature`` signs ``body`` at ``timestamp`` and the timestamp is recent."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance_seconds and hmac.compare_digest(
        sign(secret, timestamp, body), signature
    )


@dataclass(frozen=True)
class Delivery:
    """How one webhook delivery went."""

    sink: str
    delivered: bool
    attempts: int
    status: int | None
    error: str | None = None


class Webhook:
    """A configured webhook sink (``monitoring.alerts.webhooks[i]``)."""

    def __init__(
        self,
        config: Mapping[str, Any],
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = str(config["name"])
        self.url = str(config["url"])
        self.secret_env = str(config["secret_env"])
        self.timeout = float(config["timeout_seconds"])
        self.retry = RetryPolicy(
            max_attempts=int(config["max_attempts"]),
            backoff_ms=float(config["backoff_ms"]),
            max_backoff_ms=float(config["max_backoff_ms"]),
        )
        self.session = session or requests.Session()
        self.sleep = sleep

    def secret(self) -> bytes:
        value = os.environ.get(self.secret_env)
        if not value:
            raise ValueError(f"environment variable {self.secret_env} is not set")
        return value.encode()

    def send(self, payload: Mapping[str, Any]) -> Delivery:
        """POST ``payload`` signed, with retries; never raises."""
        try:
            secret = self.secret()
        except ValueError as exc:
            return Delivery(self.name, False, 0, None, str(exc))
        body = orjson.dumps(payload)
        delivery_id = ids.new_id()
        status: int | None = None
        error: str | None = None
        attempt = 0
        for attempt in range(1, self.retry.max_attempts + 1):
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "loangate-monitoring",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(secret, timestamp, body),
                DELIVERY_HEADER: delivery_id,
                "X-Loangate-Event": EVENT,
            }
            try:
                response = self.session.post(
                    self.url, data=body, headers=headers, timeout=self.timeout
                )
                status, error = response.status_code, None
                response.close()
                if 200 <= status < 300:
                    return Delivery(self.name, True, attempt, status)
                if status != 429 and status < 500:
                    break  # the receiver refuses it: retrying would not help
                error = f"HTTP {status}"
            except requests.RequestException as exc:
                status, error = None, type(exc).__name__
            if attempt < self.retry.max_attempts:
                self.sleep(self.retry.delay_seconds(attempt))
        return Delivery(self.name, False, attempt, status, error or f"HTTP {status}")


class AlertSinks:
    """Sends a run's alerts to the log, the webhooks and the plugins' hook."""

    def __init__(
        self,
        settings: Mapping[str, Any],
        plugin_manager: Any = None,
        app: Any = None,
    ) -> None:
        alerts = settings["alerts"]
        self.log_enabled = bool(alerts["log"])
        self.min_severity = str(alerts["min_severity"])
        self.webhooks = [Webhook(w) for w in alerts["webhooks"]]
        self.pm = plugin_manager
        self.app = app

    def wanted(self, severity: str) -> bool:
        return SEVERITIES.index(severity) >= SEVERITIES.index(self.min_severity)

    def send(self, run: Mapping[str, Any], alerts: Sequence[Alert]) -> list[Delivery]:
        """Deliver ``alerts`` of ``run`` (its id, kind, scope, window) to every sink."""
        if not alerts:
            return []
        if self.log_enabled:
            for alert in alerts:
                log.warning("monitoring_alert", **alert.as_dict())
        if self.pm is not None:
            for alert in alerts:
                try:
                    self.pm.hook.monitoring_alert(alert=alert, app=self.app)
                except Exception as exc:  # a plugin's failure never stops the others
                    log.error("monitoring_alert_hook_failed", error=type(exc).__name__)
        payload = {
            "event": EVENT,
            "run": dict(run),
            "alerts": [a.as_dict() for a in alerts],
        }
        deliveries = [hook.send(payload) for hook in self.webhooks]
        for d in deliveries:
            (log.info if d.delivered else log.error)(
                "monitoring_webhook",
                sink=d.sink,
                delivered=d.delivered,
                attempts=d.attempts,
                status=d.status,
                error=d.error,
            )
        return deliveries
