"""Per-client rate limits: the GCRA stores (local and Redis), and 429 in each protocol.

The stores run on an injected clock: burst, refill and Retry-After are asserted on
numbers, never on sleeps. The in-process store is also driven from several forked
processes at once (the workers of one host). End-to-end runs under gunicorn are in
``test_rate_limits_e2e.py``.
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from gateway import rate_limits
from gateway.errors import ConfigError, Problem
from gateway.metrics import RATE_LIMIT_STORE_ERRORS, RATE_LIMITED
from gateway.rate_limits import Limit, LocalStore, RateLimiter, RedisStore, gcra
from tests.conftest import bearer, fetch_token, make_db_url, register_demo_model
from tests.helpers import body

DECIDE = "/v1/pipelines/credit-risk/decisions"


class Clock:
    """A settable clock (seconds)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["local", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Any]:
    """Each store on the same injected clock; Redis keys under a prefix of this test."""
    if request.param == "local":
        local = LocalStore(tmp_path / "rate-limits.bin", slots=64, clock=clock)
        yield local
        local.close()
        return
    prefix = f"loangate-test:{uuid.uuid4().hex}:"
    remote = RedisStore(request.getfixturevalue("redis_url"), prefix, 1000, clock=clock)
    yield remote
    for key in remote.client.scan_iter(f"{prefix}*"):
        remote.client.delete(key)
    remote.close()


# --- the algorithm and the stores ----------------------------------------------------


def test_gcra_burst_then_one_per_interval() -> None:
    limit = Limit(rate=2.0, burst=3)  # interval 0.5 s
    tat: float | None = None
    waits = []
    for _ in range(4):
        tat, wait = gcra(tat, 100.0, limit)
        waits.append(wait)
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(0.5)
    assert tat == pytest.approx(101.5)  # the refused request took nothing
    assert gcra(tat, 100.5, limit)[1] == 0.0  # one interval later: one more


def test_gcra_clock_going_back_refuses_for_at_most_a_burst() -> None:
    limit = Limit(rate=1.0, burst=5)
    _, wait = gcra(10_000.0, 100.0, limit)  # a TAT far ahead: the clock went back
    assert wait == pytest.approx(1.0)


def test_store_burst_refill_and_retry_after(store: Any, clock: Clock) -> None:
    limit = Limit(rate=0.5, burst=5)  # one request every 2 s, 5 at once
    assert [store.acquire("client-a", limit) for _ in range(5)] == [0.0] * 5
    wait = store.acquire("client-a", limit)
    assert wait == pytest.approx(2.0, abs=1e-3)
    assert rate_limits.retry_after_seconds(wait) == 2
    clock.now += 1.0
    assert store.acquire("client-a", limit) == pytest.approx(1.0, abs=1e-3)
    clock.now += 1.0  # one interval since the burst: exactly one more
    assert store.acquire("client-a", limit) == 0.0
    assert store.acquire("client-a", limit) > 0
    clock.now += 10.0  # a full burst again, no more
    assert [store.acquire("client-a", limit) for _ in range(6)].count(0.0) == 5


def test_store_keeps_clients_apart(store: Any) -> None:
    limit = Limit(rate=0.001, burst=2)
    assert [store.acquire("client-a", limit) for _ in range(3)][-1] > 0
    assert store.acquire("client-b", limit) == 0.0
    assert store.acquire("client-b", limit) == 0.0
    assert store.acquire("client-b", limit) > 0
    assert store.acquire("client-a", limit) > 0


def test_local_store_is_one_budget_for_every_opener(tmp_path: Path, clock: Clock) -> None:
    """Two stores on one file (two workers of a host) draw from the same budget."""
    path = tmp_path / "rate-limits.bin"
    one, two = LocalStore(path, clock=clock), LocalStore(path, clock=clock)
    limit = Limit(rate=0.001, burst=4)
    admitted = [s.acquire("shared", limit) == 0.0 for s in (one, two, one, two, one, two)]
    assert admitted == [True, True, True, True, False, False]
    one.close()
    two.close()


def _hammer(path: str, key: str, tries: int, out: Any) -> None:
    store = LocalStore(Path(path), clock=lambda: 5_000.0)
    out.put(sum(store.acquire(key, Limit(rate=0.001, burst=7)) == 0.0 for _ in range(tries)))


def test_local_store_holds_across_processes(tmp_path: Path) -> None:
    """Four forked processes at once, 25 tries each: exactly the burst is admitted."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_hammer, args=(str(tmp_path / "rl.bin"), "k", 25, out)) for _ in range(4)
    ]
    for proc in procs:
        proc.start()
    counts = [out.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert sum(counts) == 7


def test_local_store_reuses_spent_slots_and_resets_a_foreign_file(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "rl.bin"
    path.write_bytes(b"not a table")
    store = LocalStore(path, slots=4, clock=clock)
    limit = Limit(rate=1.0, burst=1)
    for i in range(4):
        assert store.acquire(f"c{i}", limit) == 0.0
    # Every slot holds a live budget: a fifth client takes over the one nearest to full.
    assert store.acquire("c4", limit) == 0.0
    clock.now += 5.0  # every budget full again: their slots are free for anyone
    assert [store.acquire(f"n{i}", limit) for i in range(4)] == [0.0] * 4
    assert path.stat().st_size == LocalStore.HEADER.size + 4 * LocalStore.RECORD.size
    store.close()


def test_redis_store_fails_open_and_backs_off(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ticks = Clock(0.0)
    store = RedisStore(f"redis://127.0.0.1:{port}/0", "x:", 200, retry_seconds=5, monotonic=ticks)
    errors = RATE_LIMIT_STORE_ERRORS.labels("redis")
    before = errors._value.get()
    limit = Limit(rate=0.001, burst=1)
    assert [store.acquire("c", limit) for _ in range(3)] == [0.0] * 3  # served, not refused
    assert errors._value.get() == before + 1  # tried once, then left alone
    ticks.now += 6
    assert store.acquire("c", limit) == 0.0
    assert errors._value.get() == before + 2  # tried again after the back-off


def test_limiter_uses_overrides_and_raises_429(tmp_path: Path, clock: Clock) -> None:
    store = LocalStore(tmp_path / "rl.bin", clock=clock)
    limiter = RateLimiter(store, Limit(0.001, 1), {"big": Limit(0.001, 3)})
    limiter.check("small")
    with pytest.raises(Problem) as refused:
        limiter.check("small")
    assert refused.value.status == 429 and refused.value.slug == "rate-limited"
    assert int(refused.value.headers["Retry-After"]) >= 1
    for _ in range(3):
        limiter.check("big")
    with pytest.raises(Problem):
        limiter.check("big")
    store.close()


def test_config_defaults_off_and_checks_keys(tmp_path: Path) -> None:
    from gateway.config import load_config

    def check(section: dict[str, Any]) -> None:
        load_config(overrides={"rate_limits": section}, environ={})

    assert rate_limits.build({}, tmp_path) is None  # off unless enabled
    on = rate_limits.build(
        {"rate_limits": {"enabled": True, "clients": {"x": {"burst": 9}}}}, tmp_path
    )
    assert on is not None and isinstance(on.store, LocalStore)
    assert on.limit_for("x") == Limit(50.0, 9) and on.limit_for("y") == Limit(50.0, 100)
    with pytest.raises(ConfigError, match=r"rate_limits\.rate_per_second"):
        check({"rate_per_second": 0})
    with pytest.raises(ConfigError, match=r"rate_limits\.clients\.x"):
        check({"clients": {"x": {"rpm": 1}}})
    with pytest.raises(ConfigError, match=r"rate_limits\.redis_url"):
        check({"redis_url": "http://x"})
    env = {"LOANGATE_RATE_LIMITS__ENABLED": "true", "LOANGATE_RATE_LIMITS__BURST": "7"}
    config, _ = load_config(environ=env)
    assert config["rate_limits"] == {"enabled": True, "burst": 7}


# --- in the app: REST and SOAP answers -----------------------------------------------


@pytest.fixture
def limited_app(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, trained_model: Any
) -> Iterator[Flask]:
    """A gateway (SQLite) whose clients may send 2 requests, then one every 1000 s."""
    from gateway import create_app

    url, _ = make_db_url("sqlite", tmp_path_factory)
    register_demo_model(url, tmp_path / "models", trained_model)
    overrides = {
        "database": {"url": url},
        "models": {"dir": str(tmp_path / "models")},
        "rate_limits": {"enabled": True, "rate_per_second": 0.001, "burst": 2},
    }
    application = create_app(overrides, instance_path=tmp_path / "instance")
    yield application
    application.extensions["loangate"].engine.dispose()


def _decisions(app: Flask) -> int:
    with app.extensions["loangate"].engine.connect() as conn:
        return int(conn.execute(sa.text("select count(*) from decisions")).scalar_one())


def test_rest_429_problem_with_retry_after_and_nothing_logged(
    limited_app: Flask, capsys: pytest.CaptureFixture[str]
) -> None:
    client = limited_app.test_client()
    token = fetch_token(limited_app, client, "decisions:create", "decisions:read")
    other = fetch_token(limited_app, client, "decisions:create")
    counted = RATE_LIMITED.labels("local")
    before = counted._value.get()
    statuses = [
        client.post(DECIDE, json=body(i), headers=bearer(token)).status_code for i in (1, 2)
    ]
    assert statuses == [201, 201]
    capsys.readouterr()
    refused = client.post(DECIDE, json=body(3), headers=bearer(token))
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    problem = refused.get_json()
    assert problem["type"] == "/problems/rate-limited" and problem["status"] == 429
    assert "decision_id" not in problem and "Location" not in refused.headers
    assert int(refused.headers["Retry-After"]) >= 1
    # The same budget covers every authenticated route of the client.
    assert client.get("/v1/decisions", headers=bearer(token)).status_code == 429
    assert _decisions(limited_app) == 2
    assert counted._value.get() == before + 2
    logged = capsys.readouterr().err
    assert '"event": "rate_limited"' in logged and token not in logged
    # Another client has its own budget.
    assert client.post(DECIDE, json=body(4), headers=bearer(other)).status_code == 201


def test_openapi_lists_429_on_authenticated_routes(limited_app: Flask) -> None:
    spec = limited_app.test_client().get("/openapi.json").get_json()
    decide = spec["paths"]["/v1/pipelines/{pipeline}/decisions"]["post"]["responses"]
    assert decide["429"]["headers"]["Retry-After"]["schema"]["minimum"] == 1
    assert "429" in spec["paths"]["/v1/batches/{batch_id}"]["get"]["responses"]
    assert "429" in spec["paths"]["/soap/{pipeline}"]["post"]["responses"]
    assert "429" not in spec["paths"]["/oauth/token"]["post"]["responses"]


def _soap_envelope(version: str, header: str = "") -> tuple[bytes, dict[str, str]]:
    """A hand-written ``ScoreApplication`` envelope and its HTTP headers."""
    from tests.helpers import applicant
    from tests.test_soap import ACTION, raw, score_xml

    data = raw(score_xml(applicant(1)), header, version)
    if version == "1.1":
        return data, {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION}"'}
    return data, {"Content-Type": f'application/soap+xml; charset=utf-8; action="{ACTION}"'}


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_soap_429_client_fault_with_retry_after(limited_app: Flask, version: str) -> None:
    client: FlaskClient = limited_app.test_client()
    token = fetch_token(limited_app, client, "decisions:create")
    data, headers = _soap_envelope(version)
    headers.update(bearer(token))
    answers = [client.post("/soap/credit-risk", data=data, headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[2]
    assert int(refused.headers["Retry-After"]) >= 1
    doc = etree.fromstring(refused.data)
    fault = doc.find(".//{*}Fault")
    assert fault is not None
    code = fault.findtext("faultcode") or fault.findtext("{*}Code/{*}Value")
    assert code in ("soap:Client", "env:Sender")
    detail = fault.find(".//{*}fault")
    assert detail is not None
    assert detail.findtext("{*}code") == "rate-limited"
    assert detail.findtext("{*}status") == "429"
    assert detail.findtext("{*}retryable") == "true"
    assert detail.findtext("{*}retryAfterSeconds") == refused.headers["Retry-After"]
    assert _decisions(limited_app) == 2


def test_soap_ws_security_callers_are_limited_too(limited_app: Flask) -> None:
    from adapters.soap.wssecurity import digest_key_file, enable_password_digest
    from gateway.auth.clients import create_client
    from tests.test_soap import username_token

    state = limited_app.extensions["loangate"]
    client_id, secret = create_client(state.engine, "legacy", ["decisions:create"])
    enable_password_digest(state.engine, digest_key_file(state.instance_path), client_id, secret)
    client = limited_app.test_client()
    statuses = []
    for _ in range(3):
        data, headers = _soap_envelope("1.1", username_token(client_id, secret))
        statuses.append(client.post("/soap/credit-risk", data=data, headers=headers).status_code)
    assert statuses == [200, 200, 429]


def test_limits_off_by_default(app: Flask, get_token: Callable[..., str]) -> None:
    assert app.extensions["loangate"].extras["rate_limiter"] is None
    token = get_token("decisions:read")
    client = app.test_client()
    assert all(
        client.get("/v1/decisions", headers=bearer(token)).status_code == 200 for _ in range(5)
    )
