"""An outgoing SOAP connection over zeep: WSDL read once, every call within a budget.

A call runs on one of the connection's own threads while the caller waits at most
the remaining budget, so a service that trickles its answer cannot hold a decision
past its budget; the thread itself is bounded by per-attempt socket timeouts. The
reply is read with a size cap and parsed by zeep with DTDs, entities and huge trees
refused.
"""

from __future__ import annotations

import contextvars
import os
import threading
import time
from collections.abc import Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from time import perf_counter
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import structlog
import zeep
import zeep.exceptions
import zeep.helpers
from lxml import etree
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from gateway.errors import ConfigError
from gateway.outbound.breaker import CircuitBreaker
from gateway.outbound.cache import TTLCache
from gateway.outbound.calls import CallFailed, CallResult, log_failure
from gateway.outbound.retry import Deadline, RetryPolicy

log = structlog.get_logger(__name__)

#: Namespace of the correlation SOAP header element (``<lg:CorrelationID>``).
CORRELATION_NS = "urn:loangate:correlation"
DEFAULT_CORRELATION_HEADER = "X-Correlation-ID"
#: Below this many seconds left, another attempt is not worth starting.
MIN_ATTEMPT_SECONDS = 0.01

# zeep's own XML guards; forbid_external is inert in zeep 4.3, so the transport never
# serves anything but the one reply it read (see _CallTransport).
XML_SETTINGS = zeep.Settings(
    strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True, xml_huge_tree=False
)


@dataclass(frozen=True)
class _Scope:
    """What the transport needs to know about the attempt in progress."""

    correlation_header: str
    correlation_id: str
    timeout: float
    deadline: Deadline
    max_bytes: int


_SCOPE: contextvars.ContextVar[_Scope] = contextvars.ContextVar("outbound_scope")


@dataclass(frozen=True)
class _Reply:
    """The parts of an HTTP reply zeep reads (status, body, headers, encoding)."""

    status_code: int
    content: bytes
    headers: Mapping[str, str]
    encoding: str | None


class _TooLarge(Exception):
    pass


class _Overran(Exception):
    pass


class _CallTransport(Transport):
    """zeep's transport, with the per-attempt timeout, correlation id and reply cap."""

    def post(self, address: str, message: bytes, headers: dict[str, str]) -> _Reply:
        scope = _SCOPE.get()
        headers = {**headers, scope.correlation_header: scope.correlation_id}
        response = self.session.post(
            address,
            data=message,
            headers=headers,
            timeout=(scope.timeout, scope.timeout),
            stream=True,
        )
        with closing(response):
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > scope.max_bytes:
                raise _TooLarge(declared)
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_content(65536):
                size += len(chunk)
                if size > scope.max_bytes:
                    raise _TooLarge(str(size))
                if scope.deadline.expired:
                    raise _Overran()
                chunks.append(chunk)
        return _Reply(response.status_code, b"".join(chunks), response.headers, response.encoding)


def _mask_url(url: str) -> str:
    """``url`` without any user:password part."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def plain(value: Any) -> Any:
    """A zeep value as JSON-ready data (decimals as floats, dates as ISO strings)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _classify(exc: BaseException) -> CallFailed:
    """The :class:`CallFailed` an exception of one attempt amounts to."""
    if isinstance(exc, CallFailed):
        return exc
    if isinstance(exc, requests.Timeout | _Overran):
        return CallFailed("timeout", type(exc).__name__, retryable=True)
    if isinstance(exc, requests.ConnectionError):
        return CallFailed("unavailable", type(exc).__name__, retryable=True)
    if isinstance(exc, zeep.exceptions.Fault):
        code = str(exc.code or "")
        # The service is up and refused this request: do not trip the breaker or retry.
        client_side = code.endswith(("Client", "Sender"))
        return CallFailed("fault", code, trips_breaker=not client_side)
    if isinstance(exc, zeep.exceptions.TransportError):
        status = exc.status_code or 0
        if status == 200:  # a 200 whose body is not XML
            return CallFailed("bad-response", "invalid XML")
        return CallFailed("http-error", str(status), retryable=status >= 500)
    if isinstance(exc, _TooLarge | zeep.exceptions.Error | etree.LxmlError):
        return CallFailed("bad-response", type(exc).__name__)
    if isinstance(exc, requests.RequestException):
        return CallFailed("unavailable", type(exc).__name__, retryable=True)
    return CallFailed("error", type(exc).__name__)


class SoapConnection:
    """A named outgoing SOAP connection, built once at start from its settings."""

    kind = "soap"

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
        self.timeout = float(settings.get("timeout_ms", 1000)) / 1000.0
        self.retry = RetryPolicy.from_settings(settings.get("retries"), 50, 500)
        self.breaker = CircuitBreaker.from_settings(settings.get("breaker"))
        c = settings.get("cache") or {}
        self.cache = TTLCache(c.get("ttl_seconds", 0), c.get("max_entries", 10000))
        self.max_bytes = int(settings.get("max_response_bytes", 1 << 20))
        corr = settings.get("correlation") or {}
        self.correlation_header = corr.get("http_header", DEFAULT_CORRELATION_HEADER)
        self.correlation_soap_header = bool(corr.get("soap_header", True))
        self.max_in_flight = int(settings.get("max_in_flight", 8))
        self._slots = threading.BoundedSemaphore(self.max_in_flight)
        self._executor = ThreadPoolExecutor(self.max_in_flight, f"outbound-{name}")

        session = requests.Session()
        auth = settings.get("auth") or {"type": "none"}
        self.auth_type = auth["type"]
        wsse = None
        if self.auth_type != "none":
            username, password = _credentials(auth, where, environ)
            if self.auth_type == "basic":
                session.auth = (username, password)
            else:
                wsse = UsernameToken(username, password, use_digest=bool(auth.get("digest")))
        if settings.get("ca_file"):
            session.verify = str(_resolve(settings["ca_file"], config_dir))
        self.transport = _CallTransport(
            timeout=float(settings.get("wsdl_timeout_ms", 10000)) / 1000.0, session=session
        )
        wsdl = settings["wsdl"]
        self.wsdl = wsdl if _is_url(wsdl) else str(_resolve(wsdl, config_dir))
        try:
            # Read once, here: calls never fetch or parse the WSDL again.
            self.client = zeep.Client(
                self.wsdl, wsse=wsse, transport=self.transport, settings=XML_SETTINGS
            )
            self.binding, default_address = self._pick_port(settings)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"{where}.wsdl: cannot load {_mask_url(self.wsdl)}: {exc}") from exc
        self.address = settings.get("address") or default_address
        self.service = self.client.create_service(self.binding.name, self.address)

    def _pick_port(self, settings: Mapping[str, Any]) -> tuple[Any, str]:
        services = self.client.wsdl.services
        where = f"connections.{self.name}"
        if not services:
            raise ConfigError(f"{where}.wsdl: the WSDL declares no service")
        service_name = settings.get("service") or next(iter(services))
        service = services.get(service_name)
        if service is None:
            raise ConfigError(f"{where}.service: no service {service_name!r} in the WSDL")
        port_name = settings.get("port") or next(iter(service.ports))
        port = service.ports.get(port_name)
        if port is None:
            raise ConfigError(f"{where}.port: no port {port_name!r} in service {service_name!r}")
        return port.binding, port.binding_options.get("address", "")

    # --- what a component asks of a connection ----------------------------------

    def operations(self) -> frozenset[str]:
        """Names of the operations the bound port offers."""
        return frozenset(self.binding.all())

    def arguments(self, operation: str) -> frozenset[str] | None:
        """Argument names of ``operation`` (document/literal wrapped), or None if opaque."""
        try:
            body = self.binding.get(operation).input.body
            return frozenset(name for name, _ in body.type.elements)
        except Exception:  # another message style: the service checks its own arguments
            return None

    def call(
        self,
        operation: str,
        args: Mapping[str, Any],
        *,
        correlation_id: str,
        budget_ms: float,
    ) -> CallResult:
        """Call ``operation`` with ``args`` within ``budget_ms``; raise :class:`CallFailed`.

        The answer is served from the cache when a live entry exists; otherwise the
        breaker must allow the call, and retries stay inside the budget.
        """
        started = perf_counter()
        deadline = Deadline(budget_ms / 1000.0)
        key = _cache_key(operation, args)
        cached = self.cache.get(key) if key is not None else None
        if cached is not None:
            return self._done(operation, "cache", started, CallResult(cached, True, 0, 0.0))
        if not self._slots.acquire(blocking=False):
            raise self._failed(operation, started, CallFailed("busy"))
        if not self.breaker.allow():
            self._slots.release()
            raise self._failed(operation, started, CallFailed("circuit-open"))
        scope = contextvars.copy_context()
        try:
            future = self._executor.submit(
                scope.run, self._attempts, operation, dict(args), correlation_id, deadline
            )
        except RuntimeError as exc:  # shut down
            self._slots.release()
            self.breaker.record_success()  # neutral: release a half-open probe
            raise self._failed(operation, started, CallFailed("unavailable", str(exc))) from exc
        try:
            value, attempts = future.result(timeout=max(deadline.remaining(), 0.0))
        except FutureTimeout:
            self.breaker.record_failure()
            raise self._failed(operation, started, CallFailed("timeout", "budget")) from None
        except CallFailed as exc:
            if exc.trips_breaker:
                self.breaker.record_failure()
            else:
                self.breaker.record_success()
            raise self._failed(operation, started, exc) from None
        self.breaker.record_success()
        if key is not None:
            self.cache.put(key, value)
        elapsed = (perf_counter() - started) * 1000.0
        return self._done(operation, "ok", started, CallResult(value, False, attempts, elapsed))

    def _attempts(
        self,
        operation: str,
        args: dict[str, Any],
        correlation_id: str,
        deadline: Deadline,
    ) -> tuple[dict[str, Any], int]:
        """Attempts with backoff until one answers, none is left, or the budget is spent."""
        try:
            attempt = 0
            while True:
                attempt += 1
                timeout = min(self.timeout, deadline.remaining())
                if timeout < MIN_ATTEMPT_SECONDS:
                    raise CallFailed("timeout", "budget", attempts=attempt - 1)
                try:
                    return self._once(operation, args, correlation_id, timeout, deadline), attempt
                except Exception as exc:
                    failure = _classify(exc)
                    failure.attempts = attempt
                    if not failure.retryable or attempt >= self.retry.max_attempts:
                        raise failure from None
                    delay = self.retry.delay_seconds(attempt)
                    if deadline.remaining() - delay < MIN_ATTEMPT_SECONDS:
                        raise failure from None
                    time.sleep(delay)
        finally:
            self._slots.release()

    def _once(
        self,
        operation: str,
        args: dict[str, Any],
        correlation_id: str,
        timeout: float,
        deadline: Deadline,
    ) -> dict[str, Any]:
        token = _SCOPE.set(
            _Scope(self.correlation_header, correlation_id, timeout, deadline, self.max_bytes)
        )
        try:
            headers = (
                [_correlation_element(correlation_id)] if self.correlation_soap_header else None
            )
            result = self.service[operation](**args, _soapheaders=headers)
        finally:
            _SCOPE.reset(token)
        value = plain(zeep.helpers.serialize_object(result, dict))
        return value if isinstance(value, dict) else {"value": value}

    def _done(self, operation: str, outcome: str, started: float, result: CallResult) -> CallResult:
        log.info(
            "outbound_call",
            connection=self.name,
            operation=operation,
            outcome=outcome,
            attempts=result.attempts,
            elapsed_ms=round((perf_counter() - started) * 1000.0, 3),
        )
        return result

    def _failed(self, operation: str, started: float, failure: CallFailed) -> CallFailed:
        return log_failure(self.name, operation, started, failure, self.breaker.state)

    def describe(self) -> dict[str, Any]:
        """The connection's settings and state, without secrets."""
        auth = dict(self.settings.get("auth") or {"type": "none"})
        return {
            "name": self.name,
            "type": self.kind,
            "wsdl": _mask_url(self.settings["wsdl"]),
            "address": _mask_url(self.address),
            "operations": sorted(self.operations()),
            "auth": {
                k: auth[k] for k in ("type", "username", "password_env", "digest") if k in auth
            },
            "timeout_ms": self.timeout * 1000.0,
            "retries": self.retry.as_dict(),
            "breaker": self.breaker.as_dict(),
            "cache": {"ttl_seconds": self.cache.ttl, "entries": len(self.cache)},
            "max_in_flight": self.max_in_flight,
            "correlation_header": self.correlation_header,
        }

    def close(self) -> None:
        """Stop the call threads (without waiting) and close pooled HTTP connections."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.transport.session.close()


def _correlation_element(correlation_id: str) -> etree._Element:
    """The SOAP header element carrying the correlation id."""
    element = etree.Element(f"{{{CORRELATION_NS}}}CorrelationID", nsmap={"lg": CORRELATION_NS})
    element.text = correlation_id
    return element


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _resolve(name: str, config_dir: Path) -> Path:
    path = Path(name)
    return path if path.is_absolute() else config_dir / path


def _credentials(
    auth: Mapping[str, Any], where: str, environ: Mapping[str, str]
) -> tuple[str, str]:
    for key in ("username", "password_env"):
        if not auth.get(key):
            raise ConfigError(f"{where}.auth.{key}: required for auth type {auth['type']!r}")
    variable = auth["password_env"]
    password = environ.get(variable)
    if not password:
        raise ConfigError(f"{where}.auth.password_env: environment variable {variable} is not set")
    return str(auth["username"]), password


def _cache_key(operation: str, args: Mapping[str, Any]) -> Hashable | None:
    """A key for (operation, arguments), or None when an argument is not hashable."""
    try:
        key = (operation, tuple(sorted(args.items())))
        hash(key)
    except TypeError:
        return None
    return key
