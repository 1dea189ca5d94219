"""Outgoing SOAP connections and the soap-lookup enricher, against real services on loopback.

A stand-in core-banking service (tests/soap_standin.py) runs on a free port, healthy,
slow, failing or down; decisions must come back within the enricher's budget with the
declared fallback in their records, and the breaker must open and close as configured.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import create_app
from gateway.config import DEFAULT_CONFIG_FILE, load_config
from gateway.errors import ConfigError
from gateway.outbound.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from gateway.outbound.cache import TTLCache
from gateway.outbound.calls import CallFailed
from gateway.outbound.connections import Connections, build_connections
from gateway.outbound.retry import RetryPolicy
from tests.conftest import bearer, fetch_token, gateway_overrides, make_db_url, register_demo_model
from tests.helpers import body
from tests.soap_standin import CoreBankingStandIn, closed_port_url, serve

CONFIG_DIR = DEFAULT_CONFIG_FILE.parent
PIPELINE = "credit-risk-core-banking"
OP = "GetCustomerProfile"
SECRET = "s3cret-Pa55"
#: The enricher's budget in these tests, and the bound its decisions must return within
#: (budget + a generous margin for the rest of the request; the slow service takes 2 s).
BUDGET_MS = 300
WITHIN_BUDGET_S = 1.5


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- breaker, cache, retry delays --------------------------------------------------


def test_breaker_opens_after_threshold_half_opens_and_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, open_seconds=10, half_open_probes=1, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == CLOSED
    breaker.record_success()  # a success resets the count: failures must be consecutive
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == OPEN and not breaker.allow()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.state == HALF_OPEN
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one probe at a time
    breaker.record_failure()  # the probe failed: open again for a full period
    assert breaker.state == OPEN
    clock.now += 10.1
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == CLOSED and breaker.allow()


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(1, 3),
    st.lists(st.sampled_from(["allow", "ok", "fail", "tick", "wait"]), max_size=60),
)
def test_breaker_never_lets_a_call_through_while_open(
    threshold: int, probes: int, events: list[str]
) -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold, open_seconds=5, half_open_probes=probes, clock=clock)
    in_flight = 0  # calls let through and not yet recorded
    probing = 0  # calls let through while half-open since the last record
    for event in events:
        if event == "allow":
            state = breaker.state
            allowed = breaker.allow()
            if state == OPEN:
                assert not allowed
            if state == CLOSED:
                assert allowed
            if state == HALF_OPEN and allowed:
                probing += 1
                assert probing <= probes
            in_flight += allowed
        elif event in {"ok", "fail"} and in_flight:
            in_flight -= 1
            probing = 0
            (breaker.record_success if event == "ok" else breaker.record_failure)()
        elif event == "tick":
            clock.now += 1
        elif event == "wait":
            clock.now += 5


def test_ttl_cache_expires_and_evicts_least_recent() -> None:
    clock = Clock()
    cache = TTLCache(ttl_seconds=60, max_entries=2, clock=clock)
    cache.put("a", {"v": 1})
    cache.put("b", {"v": 2})
    assert cache.get("a") == {"v": 1}  # a is now the most recent
    cache.put("c", {"v": 3})
    assert cache.get("b") is None and cache.get("a") == {"v": 1}
    clock.now += 60
    assert cache.get("a") is None and len(cache) == 1
    off = TTLCache(ttl_seconds=0)
    off.put("a", 1)
    assert off.get("a") is None


@given(
    st.integers(1, 50),
    st.floats(0, 10_000),
    st.floats(0, 10_000),
    st.floats(0, 1),
    st.floats(0, 1, exclude_max=True),
)
def test_backoff_delay_is_bounded(
    attempt: int, backoff: float, cap: float, jitter: float, rand: float
) -> None:
    policy = RetryPolicy(max_attempts=3, backoff_ms=backoff, max_backoff_ms=cap, jitter=jitter)
    delay = policy.delay_seconds(attempt, rand=lambda: rand)
    assert 0 <= delay <= min(cap, backoff * 2 ** min(attempt - 1, 30)) / 1000 + 1e-12
    assert delay >= min(cap, backoff * 2 ** min(attempt - 1, 30)) * (1 - jitter) / 1000 - 1e-12


# --- the connection against the stand-in service -----------------------------------


@pytest.fixture(scope="module")
def standin_server() -> Iterator[tuple[CoreBankingStandIn, str]]:
    app = CoreBankingStandIn()
    with serve(app) as url:
        yield app, url


@pytest.fixture
def standin(standin_server: tuple[CoreBankingStandIn, str]) -> CoreBankingStandIn:
    app, _ = standin_server
    app.reset()
    return app


@pytest.fixture
def url(standin_server: tuple[CoreBankingStandIn, str], standin: CoreBankingStandIn) -> str:
    return standin_server[1]


@pytest.fixture
def connect() -> Iterator[Callable[..., Connections]]:
    """``connect(url, **settings)``: a registry with one connection, ``cb``."""
    built: list[Connections] = []

    def _connect(address: str, environ: dict[str, str] | None = None, **spec: Any) -> Connections:
        settings = {"wsdl": "wsdl/core-banking.wsdl", "address": address, **spec}
        connections = build_connections({"cb": settings}, CONFIG_DIR, environ or {})
        built.append(connections)
        return connections

    yield _connect
    for connections in built:
        connections.close()


def lookup(connections: Connections, customer: str = "C-100", budget_ms: float = 2000) -> Any:
    return connections.get("cb").call(
        OP, {"customerId": customer}, correlation_id="corr-1", budget_ms=budget_ms
    )


def test_a_call_returns_the_profile_and_carries_the_correlation_id(
    connect: Callable[..., Connections], url: str, standin: CoreBankingStandIn
) -> None:
    result = lookup(connect(url))
    assert result.value["segment"] == "retail"
    assert result.value["monthlyIncome"] == 3250.5  # a decimal, made JSON-ready
    assert result.value["customerSince"] == "2011-04-01"
    assert not result.cached and result.attempts == 1
    [seen] = standin.seen
    assert seen.customer_id == "C-100"
    assert seen.http_correlation == "corr-1" and seen.soap_correlation == "corr-1"


def test_the_wsdl_from_a_url_is_loaded_once(
    connect: Callable[..., Connections], url: str, standin: CoreBankingStandIn
) -> None:
    connections = connect(url, wsdl=f"{url}?wsdl")
    assert standin.wsdl_loads == 1
    for i in range(5):
        lookup(connections, customer=f"C-{i}")
    assert standin.calls == 5 and standin.wsdl_loads == 1


def test_a_cached_answer_does_not_reach_the_service_until_it_expires(
    connect: Callable[..., Connections], url: str, standin: CoreBankingStandIn
) -> None:
    connections = connect(url, cache={"ttl_seconds": 0.3})
    first, second = lookup(connections), lookup(connections)
    assert standin.calls == 1
    assert second.cached and second.value == first.value
    lookup(connections, customer="C-200")  # another key is another call
    assert standin.calls == 2
    time.sleep(0.35)
    assert not lookup(connections).cached
    assert standin.calls == 3


def test_the_breaker_opens_after_failures_and_closes_after_a_good_probe(
    connect: Callable[..., Connections], url: str, standin: CoreBankingStandIn
) -> None:
    connections = connect(
        url,
        retries={"max_attempts": 1},
        breaker={"failure_threshold": 3, "open_seconds": 0.3},
    )
    standin.mode = "fault"
    for _ in range(3):
        with pytest.raises(CallFailed) as failed:
            lookup(connections)
        assert failed.value.reason == "fault"
    for _ in range(4):  # open: refused without reaching the service
        with pytest.raises(CallFailed) as failed:
            lookup(connections)
        assert failed.value.reason == "circuit-open"
    assert standin.calls == 3
    assert connections.get("cb").breaker.state == OPEN
    standin.mode = "healthy"
    time.sleep(0.35)
    assert connections.get("cb").breaker.state == HALF_OPEN
    assert lookup(connections).value["segment"] == "retail"
    assert standin.calls == 4
    assert connections.get("cb").breaker.state == CLOSED


def test_a_client_fault_neither_retries_nor_trips_the_breaker(
    connect: Callable[..., Connections], url: str, standin: CoreBankingStandIn
) -> None:
    connections = connect(url, retries={"max_attempts": 3}, breaker={"failure_threshold": 2})
    for _ in range(3):
        with pytest.raises(CallFailed) as failed:
            lookup(connections, customer="UNKNOWN")
        assert failed.value.reason == "fault" and failed.value.attempts == 1
    assert standin.calls == 3
    assert connections.get("cb").breaker.state == CLOSED


def test_server_errors_are_retried_with_backoff_within_the_budget(
    connect: Callable[..., Connections], url: str, standin: CoreBankingStandIn
) -> None:
    connections = connect(url, retries={"max_attempts": 3, "backoff_ms": 10, "jitter": 0})
    standin.mode = "http500"
    with pytest.raises(CallFailed) as failed:
        lookup(connections)
    assert failed.value.reason == "http-error" and failed.value.attempts == 3
    assert standin.calls == 3
    # A budget too small for the backoff: no further attempt is started.
    standin.reset("http500")
    slow_backoff = connect(url, retries={"max_attempts": 5, "backoff_ms": 5000})
    with pytest.raises(CallFailed):
        lookup(slow_backoff, budget_ms=200)
    assert standin.calls == 1


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("slow", "timeout"), ("fault", "fault"), ("http500", "http-error")],
)
def test_each_failure_ends_within_the_budget(
    connect: Callable[..., Connections],
    url: str,
    standin: CoreBankingStandIn,
    mode: str,
    reason: str,
) -> None:
    connections = connect(url, timeout_ms=5000, retries={"max_attempts": 4, "backoff_ms": 50})
    standin.mode = mode
    started = time.perf_counter()
    with pytest.raises(CallFailed) as failed:
        lookup(connections, budget_ms=BUDGET_MS)
    assert time.perf_counter() - started < WITHIN_BUDGET_S
    assert failed.value.reason == reason


def test_nothing_listening_is_unavailable(connect: Callable[..., Connections]) -> None:
    with pytest.raises(CallFailed) as failed:
        lookup(connect(closed_port_url()), budget_ms=BUDGET_MS)
    assert failed.value.reason == "unavailable"


@pytest.mark.parametrize("mode", ["dtd", "huge"])
def test_hostile_replies_are_refused_unparsed(
    connect: Callable[..., Connections], url: str, standin: CoreBankingStandIn, mode: str
) -> None:
    standin.mode = mode
    with pytest.raises(CallFailed) as failed:
        lookup(connect(url, max_response_bytes=65536))
    assert failed.value.reason == "bad-response"


@pytest.mark.parametrize(
    "auth",
    [
        {"type": "basic"},
        {"type": "wsse-username"},
        {"type": "wsse-username", "digest": True},
    ],
)
def test_auth_sends_the_secret_from_the_environment_and_never_shows_it(
    connect: Callable[..., Connections],
    url: str,
    standin: CoreBankingStandIn,
    auth: dict[str, Any],
) -> None:
    if auth["type"] == "basic":
        standin.basic = ("loangate", SECRET)
    else:
        standin.wsse = ("loangate", SECRET)
    spec = {**auth, "username": "loangate", "password_env": "CB_PASSWORD"}
    connections = connect(url, environ={"CB_PASSWORD": SECRET}, auth=spec)
    assert lookup(connections).value["segment"] == "retail"
    wrong = connect(url, environ={"CB_PASSWORD": "wrong"}, auth=spec)
    with pytest.raises(CallFailed):
        lookup(wrong)
    described = json.dumps(connections.describe())
    assert SECRET not in described and "CB_PASSWORD" in described


def test_a_missing_secret_refuses_to_start_naming_the_key(
    connect: Callable[..., Connections], url: str
) -> None:
    auth = {"type": "basic", "username": "loangate", "password_env": "CB_PASSWORD"}
    with pytest.raises(ConfigError, match=r"connections\.cb\.auth\.password_env: .*CB_PASSWORD"):
        connect(url, auth=auth)


def test_credentials_in_a_url_are_masked(connect: Callable[..., Connections], url: str) -> None:
    address = url.replace("http://", "http://user:pw-in-url@")
    described = json.dumps(connect(address).describe())
    assert "pw-in-url" not in described and "***@127.0.0.1" in described


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"wsdl": "wsdl/missing.wsdl"}, r"connections\.cb\.wsdl: cannot load"),
        ({"service": "Nope"}, r"connections\.cb\.service: no service 'Nope'"),
        ({"port": "Nope"}, r"connections\.cb\.port: no port 'Nope'"),
    ],
)
def test_a_bad_connection_refuses_to_start(
    connect: Callable[..., Connections], spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        connect("http://127.0.0.1:9/x", **spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"timeout_ms": -1}, r"connections\.core-banking\.timeout_ms"),
        ({"retries": {"max_attempts": 0}}, r"connections\.core-banking\.retries\.max_attempts"),
        ({"auth": {"type": "kerberos"}}, r"connections\.core-banking\.auth\.type"),
        ({"colour": "red"}, r"connections\.core-banking: Additional properties"),
    ],
)
def test_a_bad_connections_section_is_refused(spec: dict[str, Any], message: str) -> None:
    connection = {"wsdl": "wsdl/core-banking.wsdl", **spec}
    with pytest.raises(ConfigError, match=message):
        load_config(overrides={"connections": {"core-banking": connection}}, environ={})


# --- decisions through the soap-lookup enricher --------------------------------------


def commented_example() -> tuple[dict[str, Any], dict[str, Any]]:
    """The commented-out ``connections:`` and demo pipeline of config/gateway.yaml."""
    lines = DEFAULT_CONFIG_FILE.read_text(encoding="utf-8").splitlines()

    def block(first: str, indent: str) -> Any:
        start = next(i for i, line in enumerate(lines) if line.startswith(first))
        kept = []
        for line in lines[start:]:
            if not line.startswith(f"{indent}#"):
                break
            kept.append(line[len(indent) + 2 :])
        return yaml.safe_load("\n".join(kept))

    return block("# connections:", "")["connections"], block(f"  # {PIPELINE}:", "  ")[PIPELINE]


def test_the_core_banking_schema_is_the_base_schema_plus_customer_id() -> None:
    schemas = CONFIG_DIR / "schemas"
    base = yaml.safe_load((schemas / "credit-application.yaml").read_text(encoding="utf-8"))
    extended = yaml.safe_load(
        (schemas / "credit-application-core-banking.yaml").read_text(encoding="utf-8")
    )
    assert extended["fields"].pop("customer_id")["class"] == "personal"
    assert extended["fields"] == base["fields"]


@pytest.fixture
def make_gateway(
    db_url: str,
    tmp_path: Path,
    trained_model: Any,
    url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., Flask]]:
    """``make_gateway(connection=..., lookup=...)``: the example of config/gateway.yaml,
    pointed at the stand-in service, with its settings changed as given."""
    models_dir = tmp_path / "models"
    register_demo_model(db_url, models_dir, trained_model)
    monkeypatch.setenv("LOANGATE_CORE_BANKING_PASSWORD", SECRET)
    apps: list[Flask] = []

    def _make(connection: dict[str, Any] | None = None, **lookup: Any) -> Flask:
        connections, pipeline = commented_example()
        connections["core-banking"].update({"address": url, **(connection or {})})
        soap = next(e for e in pipeline["enrichers"] if e["name"] == "soap-lookup")
        soap["config"].update(lookup)
        overrides = {
            **gateway_overrides(db_url, models_dir),
            "connections": connections,
            "pipelines": {PIPELINE: pipeline},
        }
        app = create_app(overrides, instance_path=tmp_path / f"instance{len(apps)}")
        apps.append(app)
        return app

    yield _make
    for app in apps:
        app.extensions["loangate"].extras["connections"].close()
        app.extensions["loangate"].engine.dispose()


def token(app: Flask, client: FlaskClient, *scopes: str) -> str:
    return fetch_token(app, client, *scopes)


def decide(app: Flask, index: int = 0, **fields: Any) -> tuple[int, dict[str, Any], str, float]:
    """(status, logged record, request id, seconds taken) of one REST decision."""
    client = app.test_client()
    request_id = f"corr-{uuid.uuid4().hex[:12]}"
    headers = {**bearer(token(app, client, "decisions:create")), "X-Request-ID": request_id}
    started = time.perf_counter()
    resp = client.post(
        f"/v1/pipelines/{PIPELINE}/decisions", json=body(index, **fields), headers=headers
    )
    took = time.perf_counter() - started
    decision_id = resp.get_json()["decision_id"]
    stored = app.extensions["loangate"].extras["decision_log"].get(decision_id)
    return resp.status_code, stored.parsed(), request_id, took


def soap_enrichments(record: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    return {
        e["field"]: (e["value"], e["source"])
        for e in record["enrichments"]
        if e["source"].startswith("soap:")
    }


def test_the_example_config_decides_with_the_core_banking_profile(
    make_gateway: Callable[..., Flask], standin: CoreBankingStandIn
) -> None:
    standin.basic = ("loangate", SECRET)
    app = make_gateway()
    status, record, request_id, _ = decide(app, customer_id="C-109")
    assert status == 201 and record["status"] == "decided"
    source = f"soap:core-banking:{OP}"
    assert soap_enrichments(record) == {
        "bank_relationship_years": (15, source),
        "bank_segment": ("retail", source),
        "bank_days_in_arrears": (30, source),
    }
    assert record["features"]["bank_segment"] == "retail"
    assert record["referral_notes"] == []
    [seen] = standin.seen
    assert seen.customer_id == "C-109"
    assert seen.http_correlation == request_id == record["request_id"]
    assert seen.soap_correlation == request_id
    client = app.test_client()
    listing = client.get(
        f"/v1/pipelines/{PIPELINE}", headers=bearer(token(app, client, "decisions:read"))
    )
    assert listing.status_code == 200 and SECRET not in listing.get_data(as_text=True)
    [lookup_stage] = [s for s in listing.get_json()["stages"] if s["name"] == "soap-lookup"]
    assert lookup_stage["connection"]["breaker"]["state"] == CLOSED
    assert lookup_stage["connection"]["auth"]["password_env"] == "LOANGATE_CORE_BANKING_PASSWORD"


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("down", "unavailable"),
        ("slow", "timeout"),
        ("fault", "fault"),
        ("http500", "http-error"),
    ],
)
def test_a_failing_service_falls_back_within_the_budget(
    make_gateway: Callable[..., Flask], standin: CoreBankingStandIn, mode: str, reason: str
) -> None:
    connection = {"timeout_ms": 5000}
    if mode == "down":
        connection["address"] = closed_port_url()
    app = make_gateway(connection, budget_ms=BUDGET_MS, fallback="missing")
    standin.mode = mode
    status, record, _, took = decide(app, customer_id="C-100")
    assert took < WITHIN_BUDGET_S
    assert status == 201 and record["status"] == "decided"
    source = f"soap:core-banking:fallback({reason})"
    assert soap_enrichments(record) == {
        "bank_relationship_years": (None, source),
        "bank_segment": (None, source),
        "bank_days_in_arrears": (None, source),
    }
    assert record["referral_notes"] == []


def test_the_refer_fallback_sends_the_decision_to_human_review(
    make_gateway: Callable[..., Flask], standin: CoreBankingStandIn
) -> None:
    app = make_gateway(budget_ms=BUDGET_MS, fallback="refer")
    status, healthy, _, _ = decide(app, customer_id="C-100")
    assert healthy["outcome"] == "approve"  # the applicant the fallback is tried on
    standin.mode = "slow"
    status, record, _, took = decide(app, customer_id="C-101")
    assert took < WITHIN_BUDGET_S
    assert status == 201 and record["outcome"] == "refer"
    assert record["referral_notes"] == [f"soap-lookup: core-banking.{OP} gave no answer (timeout)"]
    assert {s for _, s in soap_enrichments(record).values()} == {
        "soap:core-banking:fallback(timeout)"
    }


def test_without_a_customer_id_the_service_is_not_called(
    make_gateway: Callable[..., Flask], standin: CoreBankingStandIn
) -> None:
    status, record, _, _ = decide(make_gateway(fallback="missing"))
    assert status == 201
    assert {s for _, s in soap_enrichments(record).values()} == {
        "soap:core-banking:fallback(missing-input)"
    }
    assert standin.calls == 0


def test_the_breaker_opens_and_closes_across_decisions(
    make_gateway: Callable[..., Flask], standin: CoreBankingStandIn
) -> None:
    app = make_gateway(
        {"breaker": {"failure_threshold": 2, "open_seconds": 0.4}, "retries": {"max_attempts": 1}},
        budget_ms=BUDGET_MS,
        fallback="missing",
    )
    standin.mode = "fault"
    reasons = []
    for i in range(4):
        _, record, _, _ = decide(app, customer_id=f"C-{i}")
        reasons.append(soap_enrichments(record)["bank_segment"][1])
    assert reasons == [
        "soap:core-banking:fallback(fault)",
        "soap:core-banking:fallback(fault)",
        "soap:core-banking:fallback(circuit-open)",
        "soap:core-banking:fallback(circuit-open)",
    ]
    assert standin.calls == 2
    standin.mode = "healthy"
    time.sleep(0.45)
    _, record, _, _ = decide(app, customer_id="C-9")
    assert soap_enrichments(record)["bank_segment"] == ("retail", f"soap:core-banking:{OP}")
    assert standin.calls == 3
    described = app.extensions["loangate"].extras["connections"].describe()
    assert described[0]["breaker"]["state"] == CLOSED


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"connection": "nope"}, r"connection: unknown connection 'nope' \(known: core-banking\)"),
        ({"operation": "GetLoans"}, r"operation: 'GetLoans' is not an operation"),
        ({"request": {"custId": "customer_id"}}, r"request\.custId: not an argument"),
        ({"fallback": "guess"}, r"config: fallback"),
    ],
)
def test_a_bad_lookup_refuses_to_start_naming_pipeline_component_and_key(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    trained_model: Any,
    monkeypatch: pytest.MonkeyPatch,
    change: dict[str, Any],
    message: str,
) -> None:
    db_url, _ = make_db_url("sqlite", tmp_path_factory)  # credit-risk, built first, needs it
    register_demo_model(db_url, tmp_path / "models", trained_model)
    monkeypatch.setenv("LOANGATE_CORE_BANKING_PASSWORD", SECRET)
    connections, pipeline = commented_example()
    soap = pipeline["enrichers"][1]
    assert soap["name"] == "soap-lookup"
    soap["config"].update(change)
    overrides = {
        **gateway_overrides(db_url, tmp_path / "models"),
        "connections": connections,
        "pipelines": {PIPELINE: pipeline},
    }
    where = rf"pipelines\.{PIPELINE}\.enrichers\.1 \(enricher soap-lookup\)"
    with pytest.raises(ConfigError, match=rf"{where}.*{message}"):
        create_app(overrides, instance_path=tmp_path / "instance")
