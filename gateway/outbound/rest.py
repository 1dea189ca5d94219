"""An outgoing REST (JSON over HTTP) connection with OAuth 2.0 client credentials.

Built once at start from its ``connections:`` settings (``type: rest``). A call sends
one JSON request to a path under ``base_url`` with a per-attempt timeout, a
correlation id header and a bearer token from the connection's token endpoint; it
retries what may succeed later (no answer, timeouts, 408, 429, 5xx) with backoff, and
goes through the connection's circuit breaker. The access token is cached until
shortly before it expires; a 401 refreshes it once.

Client id and secret come from environment variables named in the config; neither the
secret nor a token is ever logged or described.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import orjson
import requests
import structlog

from gateway.errors import ConfigError
from gateway.outbound.breaker import CircuitBreaker
from gateway.outbound.calls import CallFailed, log_failure
from gateway.outbound.retry import RetryPolicy

log = structlog.get_logger(__name__)

DEFAULT_CORRELATION_HEADER = "X-Correlation-ID"
#: Statuses worth another attempt later: the service is there but cannot answer now.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: A cached token is renewed this long before it expires (at most half its lifetime).
TOKEN_MARGIN_SECONDS = 60.0
#: Lifetime assumed for a token whose answer gives no ``expires_in``.
DEFAULT_TOKEN_SECONDS = 300.0


@dataclass(frozen=True)
class RestResponse:
    """A 2xx answer: its status, parsed JSON body (``None`` if empty) and attempts."""

    status: int
    body: Any
    attempts: int
    elapsed_ms: float


class HttpStatusFailed(CallFailed):
    """The service answered with a non-2xx status (``status``), after any retries.

    ``retry_after`` is the delay the service asked for (seconds), if it said.
    """

    def __init__(
        self, status: int, *, retryable: bool, retry_after: float | None = None, attempts: int = 0
    ) -> None:
        super().__init__(
            "http-error",
            str(status),
            retryable=retryable,
            # a 4xx means the service is up and refused this request: keep the breaker closed
            trips_breaker=status >= 500,
            attempts=attempts,
        )
        self.status = status
        self.retry_after = retry_after


class _TokenRefused(CallFailed):
    """The token endpoint refused the connection's credentials."""


class ClientCredentials:
    """OAuth 2.0 client credentials grant, with the token cached until near expiry."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self.clock = clock  # injectable for tests
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        #: How many tokens were fetched (for monitoring and tests).
        self.fetched = 0

    def token(self, session: requests.Session, timeout: float, max_bytes: int) -> str:
        """A live access token: the cached one, or a new one from the token endpoint."""
        with self._lock:
            if self._token is not None and self.clock() < self._renew_at:
                return self._token
            data = {"grant_type": "client_credentials"}
            if self.scope:
                data["scope"] = self.scope
            started = self.clock()
            response = session.post(
                self.token_url,
                data=data,
                auth=(self.client_id, self._secret),
                headers={"Accept": "application/json"},
                timeout=(timeout, timeout),
                stream=True,
            )
            with closing(response):
                content = _read(response, max_bytes)
            if response.status_code in RETRYABLE_STATUSES:
                raise CallFailed(
                    "unavailable", f"token endpoint {response.status_code}", retryable=True
                )
            if response.status_code != 200:
                # Wrong credentials are the operator's to fix; callers keep their work queued.
                raise _TokenRefused(
                    "auth", f"token endpoint {response.status_code}", retryable=True
                )
            try:
                answer = orjson.loads(content)
                token = answer["access_token"]
                lifetime = float(answer.get("expires_in") or DEFAULT_TOKEN_SECONDS)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                raise CallFailed("bad-response", "token endpoint", retryable=True) from None
            if not isinstance(token, str) or not token:
                raise CallFailed("bad-response", "token endpoint", retryable=True)
            self._token = token
            self._renew_at = started + max(lifetime - min(TOKEN_MARGIN_SECONDS, lifetime / 2), 0)
            self.fetched += 1
            return token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (refused by the service) unless a newer one replaced it already."""
        with self._lock:
            if self._token == token:
                self._token = None


class RestConnection:
    """A named outgoing REST connection, built once at start from its settings."""

    kind = "rest"

    def __init__(
        self,
        name: str,
        settings: Mapping[str, Any],
        config_dir: Path,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        environ = os.environ if environ is None else environ
        self.name = name
        self.settings = dict(settings)
        where = f"connections.{name}"
        self.base_url = str(settings["base_url"]).rstrip("/")
        self.timeout = float(settings.get("timeout_ms", 5000)) / 1000.0
        self.retry = RetryPolicy.from_settings(settings.get("retries"), 200, 2000)
        self.breaker = CircuitBreaker.from_settings(settings.get("breaker"))
        self.max_bytes = int(settings.get("max_response_bytes", 1 << 20))
        corr = settings.get("correlation") or {}
        self.correlation_header = corr.get("http_header", DEFAULT_CORRELATION_HEADER)
        self.session = requests.Session()
        if settings.get("ca_file"):
            ca = Path(settings["ca_file"])
            self.session.verify = str(ca if ca.is_absolute() else config_dir / ca)
        auth = settings.get("auth") or {"type": "none"}
        self.auth_type = str(auth["type"])
        self.credentials: ClientCredentials | None = None
        if self.auth_type == "oauth2-client-credentials":
            self.credentials = ClientCredentials(
                _required(auth, "token_url", where),
                _from_env(auth, "client_id_env", where, environ),
                _from_env(auth, "client_secret_env", where, environ),
                auth.get("scope"),
            )

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        correlation_id: str,
    ) -> RestResponse:
        """Send ``body`` as JSON to ``base_url + path``; raise :class:`CallFailed` unless 2xx.

        Retryable failures are tried again up to ``retries.max_attempts`` times; a failure
        that ends the call says whether trying later may help (``retryable``).
        """
        started = perf_counter()
        if not self.breaker.allow():
            raise self._failed(method, started, CallFailed("circuit-open", retryable=True))
        attempt = 0
        try:
            while True:
                attempt += 1
                try:
                    status, payload = self._authorised(method, path, body, correlation_id)
                    break
                except Exception as exc:
                    failure = _classify(exc)
                    failure.attempts = attempt
                    if not failure.retryable or attempt >= self.retry.max_attempts:
                        raise failure from None
                    time.sleep(self.retry.delay_seconds(attempt))
        except CallFailed as failure:
            if failure.trips_breaker:
                self.breaker.record_failure()
            else:
                self.breaker.record_success()
            raise self._failed(method, started, failure) from None
        self.breaker.record_success()
        elapsed = (perf_counter() - started) * 1000.0
        log.info(
            "outbound_call",
            connection=self.name,
            operation=method,
            outcome="ok",
            status=status,
            attempts=attempt,
            elapsed_ms=round(elapsed, 3),
        )
        return RestResponse(status, payload, attempt, elapsed)

    def _authorised(
        self, method: str, path: str, body: Mapping[str, Any] | None, correlation_id: str
    ) -> tuple[int, Any]:
        """One attempt; on a 401 with a cached token, one more with a fresh token."""
        for refreshed in (False, True):
            token = None
            headers = {self.correlation_header: correlation_id, "Accept": "application/json"}
            if self.credentials is not None:
                token = self.credentials.token(self.session, self.timeout, self.max_bytes)
                headers["Authorization"] = f"Bearer {token}"
            status, payload, retry_after = self._once(method, path, body, headers)
            if status == 401 and token is not None and not refreshed:
                assert self.credentials is not None
                self.credentials.invalidate(token)
                continue
            if 200 <= status < 300:
                return status, payload
            # A 401 with a fresh token is a credentials problem for the operator to fix,
            # not a verdict on this request: worth trying again later.
            retryable = status in RETRYABLE_STATUSES or status == 401
            raise HttpStatusFailed(status, retryable=retryable, retry_after=retry_after)
        raise AssertionError("unreachable")

    def _once(
        self, method: str, path: str, body: Mapping[str, Any] | None, headers: dict[str, str]
    ) -> tuple[int, Any, float | None]:
        data = None
        if body is not None:
            data = orjson.dumps(body)
            headers = {**headers, "Content-Type": "application/json"}
        response = self.session.request(
            method,
            self.base_url + path,
            data=data,
            headers=headers,
            timeout=(self.timeout, self.timeout),
            stream=True,
            allow_redirects=False,
        )
        with closing(response):
            content = _read(response, self.max_bytes)
        retry_after = _retry_after(response.headers.get("Retry-After"))
        payload: Any = None
        if content and 200 <= response.status_code < 300:
            try:
                payload = orjson.loads(content)
            except orjson.JSONDecodeError:
                payload = None  # a 2xx is a success whatever its body
        return response.status_code, payload, retry_after

    def _failed(self, method: str, started: float, failure: CallFailed) -> CallFailed:
        return log_failure(self.name, method, started, failure, self.breaker.state)

    def describe(self) -> dict[str, Any]:
        """The connection's settings and state, without secrets."""
        auth = dict(self.settings.get("auth") or {"type": "none"})
        return {
            "name": self.name,
            "type": self.kind,
            "base_url": self.base_url,
            "auth": {
                k: auth[k]
                for k in ("type", "token_url", "client_id_env", "client_secret_env", "scope")
                if k in auth
            },
            "timeout_ms": self.timeout * 1000.0,
            "retries": self.retry.as_dict(),
            "breaker": self.breaker.as_dict(),
            "correlation_header": self.correlation_header,
        }

    def close(self) -> None:
        """Close pooled HTTP connections."""
        self.session.close()


class _TooLarge(Exception):
    pass


def _read(response: requests.Response, max_bytes: int) -> bytes:
    """The body of ``response``, refusing more than ``max_bytes``."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _TooLarge(declared)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(65536):
        size += len(chunk)
        if size > max_bytes:
            raise _TooLarge(str(size))
        chunks.append(chunk)
    return b"".join(chunks)


def _retry_after(value: str | None) -> float | None:
    """Seconds of a ``Retry-After: <seconds>`` header (the date form is ignored)."""
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def _classify(exc: BaseException) -> CallFailed:
    """The :class:`CallFailed` an exception of one attempt amounts to."""
    if isinstance(exc, CallFailed):
        return exc
    if isinstance(exc, requests.Timeout):
        return CallFailed("timeout", type(exc).__name__, retryable=True)
    if isinstance(exc, requests.ConnectionError):
        return CallFailed("unavailable", type(exc).__name__, retryable=True)
    if isinstance(exc, _TooLarge):
        return CallFailed("bad-response", "too large", retryable=True)
    if isinstance(exc, requests.RequestException):
        return CallFailed("unavailable", type(exc).__name__, retryable=True)
    return CallFailed("error", type(exc).__name__, retryable=True)


def _required(auth: Mapping[str, Any], key: str, where: str) -> str:
    if not auth.get(key):
        raise ConfigError(f"{where}.auth.{key}: required for auth type {auth['type']!r}")
    return str(auth[key])


def _from_env(auth: Mapping[str, Any], key: str, where: str, environ: Mapping[str, str]) -> str:
    variable = _required(auth, key, where)
    value = environ.get(variable)
    if not value:
        raise ConfigError(f"{where}.auth.{key}: environment variable {variable} is not set")
    return value
