"""CRM write-back: decisions from CRM adapters PATCHed back to their CRM records.

A stand-in CRM (tests/crm_standin.py) runs on a free loopback port with a token
endpoint and the sObject PATCH route. Decisions are made through a real pipeline whose
adapter list includes a test adapter (``crm-standin``, the REST adapter under another
name) or, in the server tests, the REST adapter itself configured as the CRM adapter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner
from flask import Flask

from adapters.rest import RestAdapter
from gateway import create_app
from gateway.components import Adapter
from gateway.config import DEFAULT_CONFIG_FILE, load_config
from gateway.crm import outbox
from gateway.crm.delivery import Deliverer
from gateway.crm.writeback import Writeback, configure
from gateway.db import aware
from gateway.errors import ConfigError, Problem
from gateway.hookspecs import hookimpl
from gateway.outbound.calls import CallFailed
from gateway.outbound.connections import build_connections
from gateway.outbound.rest import HttpStatusFailed, RestConnection
from tests.conftest import gateway_overrides, register_demo_model
from tests.crm_standin import CLIENT_ID, CLIENT_SECRET, StandInCrm
from tests.helpers import body

CONFIG_DIR = DEFAULT_CONFIG_FILE.parent
ID_ENV, SECRET_ENV = "CRM_TEST_CLIENT_ID", "CRM_TEST_CLIENT_SECRET"
CRM_ADAPTER = "crm-standin"
OBJECT = "Loan_Application__c"
ORG_CLIENT = "salesforce:00D000000000001EAA"
#: How long a test waits for something to happen in the background before failing.
PATIENCE_S = 60.0


class CrmStandInAdapter(RestAdapter):
    """The REST adapter under another name: a CRM source for the pipeline."""

    name = CRM_ADAPTER


class CrmStandInPlugin:
    @hookimpl
    def register_adapters(self) -> list[type[Adapter]]:
        return [CrmStandInAdapter]


def connection_settings(crm: StandInCrm, **extra: Any) -> dict[str, Any]:
    return {
        "type": "rest",
        "base_url": crm.base_url,
        "auth": {
            "type": "oauth2-client-credentials",
            "token_url": crm.token_url,
            "client_id_env": ID_ENV,
            "client_secret_env": SECRET_ENV,
        },
        "timeout_ms": 2000,
        "retries": {"max_attempts": 1},
        "breaker": {"failure_threshold": 1000, "open_seconds": 1},
        **extra,
    }


def writeback_section(**delivery: Any) -> dict[str, Any]:
    return {
        "connection": "crm",
        "object": OBJECT,
        "adapters": [CRM_ADAPTER],
        "fields": {
            "Decision__c": "outcome",
            "Probability_Of_Default__c": "probability_of_default",
            "Decision_Id__c": "decision_id",
            "Reason_Codes__c": "reason_codes",
        },
        "delivery": {
            "in_server": False,
            "backoff_seconds": 0.05,
            "max_backoff_seconds": 0.2,
            "lease_seconds": 30,
            **delivery,
        },
    }


@pytest.fixture
def crm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ID_ENV, CLIENT_ID)
    monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)


@pytest.fixture
def crm(crm_env: None) -> Iterator[StandInCrm]:
    service = StandInCrm()
    service.start()
    yield service
    service.stop()


def make_app(db_url: str, tmp: Path, trained: Any, crm: StandInCrm, **delivery: Any) -> Flask:
    models_dir = tmp / "models"
    register_demo_model(db_url, models_dir, trained)
    overrides = {
        **gateway_overrides(db_url, models_dir),
        "connections": {"crm": connection_settings(crm)},
        "crm_writeback": writeback_section(**delivery),
        "pipelines": {"credit-risk": {"adapters": ["rest", CRM_ADAPTER]}},
    }
    return create_app(overrides, plugins=[CrmStandInPlugin()], instance_path=tmp / "instance")


@pytest.fixture
def crm_app(db_url: str, tmp_path: Path, trained_model: Any, crm: StandInCrm) -> Iterator[Flask]:
    app = make_app(db_url, tmp_path, trained_model, crm)
    yield app
    app.extensions["loangate"].extras["connections"].close()
    app.extensions["loangate"].engine.dispose()


def decide(
    app: Flask, record_id: Any, adapter: str = CRM_ADAPTER, index: int = 1
) -> dict[str, Any]:
    """One decision through credit-risk by ``adapter`` about CRM record ``record_id``."""
    service = app.extensions["loangate"].extras["decisions"]
    with app.app_context():
        result = service.decide(
            "credit-risk",
            adapter,
            orjson.dumps(body(index, application_id=record_id)),
            {},
            ORG_CLIENT,
            "req",
        )
    document: dict[str, Any] = result.document
    return document


def writeback_of(app: Flask) -> Writeback:
    wb: Writeback = app.extensions["loangate"].extras["crm_writeback"]
    return wb


def outbox_rows(engine: sa.Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        found = conn.execute(sa.select(outbox.outbox)).mappings().all()
    return {row["decision_id"]: dict(row) for row in found}


def wait_for(condition: Callable[[], bool], what: str, patience: float = PATIENCE_S) -> None:
    deadline = time.monotonic() + patience
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


# --- configuration: refused at start, naming the key ---------------------------------


def _configure(crm_section: dict[str, Any], connections: dict[str, Any]) -> Writeback | None:
    config, config_dir = load_config(
        overrides={"connections": connections, "crm_writeback": crm_section}
    )
    built = build_connections(config["connections"], config_dir)
    try:
        return configure(config, built)
    finally:
        built.close()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"connection": "nope"}, "crm_writeback.connection: unknown connection 'nope' (known: crm"),
        ({"colour": "red"}, "crm_writeback: Additional properties are not allowed ('colour'"),
        ({"fields": {"Salary__c": "applicant_income"}}, "crm_writeback.fields.Salary__c"),
        ({"fields": {"Bad Name": "outcome"}}, "crm_writeback.fields"),
        ({"object": "Loan/../x"}, "crm_writeback.object"),
        ({"object": 7}, "crm_writeback.object: 7 is not of type 'string'"),
        ({"adapters": []}, "crm_writeback.adapters"),
        ({"statuses": ["maybe"]}, "crm_writeback.statuses.0"),
        ({"path": "/sobjects/{object}"}, "crm_writeback.path: must contain {record_id}"),
        ({"path": "/x/{record_id}/{secret}"}, "crm_writeback.path: unknown placeholder"),
        ({"delivery": {"batch": 0}}, "crm_writeback.delivery.batch"),
        ({"delivery": {"lease_seconds": 2}}, "crm_writeback.delivery.lease_seconds: must exceed"),
    ],
)
def test_bad_writeback_config_refuses_to_start(
    crm: StandInCrm, change: dict[str, Any], message: str
) -> None:
    section = {**writeback_section(), **change}
    with pytest.raises(ConfigError) as raised:
        _configure(section, {"crm": connection_settings(crm)})
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"base_url": "ftp://crm.example"}, "connections.crm.base_url"),
        ({"wsdl": "wsdl/core-banking.wsdl"}, "Additional properties are not allowed ('wsdl'"),
        ({"auth": {"type": "oauth2-client-credentials"}}, "connections.crm.auth.token_url"),
        ({"auth": {"type": "kerberos"}}, "connections.crm.auth.type"),
        ({"timeout_ms": -1}, "connections.crm.timeout_ms"),
    ],
)
def test_bad_rest_connection_refuses_to_start(
    crm: StandInCrm, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        _configure(writeback_section(), {"crm": {**connection_settings(crm), **change}})
    assert message in str(raised.value)


def test_missing_secret_variable_refuses_to_start(
    crm: StandInCrm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(ConfigError) as raised:
        _configure(writeback_section(), {"crm": connection_settings(crm)})
    assert str(raised.value) == (
        f"connections.crm.auth.client_secret_env: environment variable {SECRET_ENV} is not set"
    )


def test_a_soap_connection_cannot_carry_the_writeback(crm: StandInCrm) -> None:
    soap = {"wsdl": "wsdl/core-banking.wsdl", "address": "http://127.0.0.1:9/core-banking"}
    with pytest.raises(ConfigError) as raised:
        _configure(
            {**writeback_section(), "connection": "core"},
            {"crm": connection_settings(crm), "core": soap},
        )
    assert str(raised.value) == (
        "crm_writeback.connection: connection 'core' is a soap connection, not rest"
    )


def test_no_section_means_no_writeback(crm: StandInCrm) -> None:
    config, config_dir = load_config(overrides={"connections": {"crm": connection_settings(crm)}})
    assert configure(config, build_connections(config["connections"], config_dir)) is None
    disabled = {**writeback_section(), "enabled": False}
    assert _configure(disabled, {"crm": connection_settings(crm)}) is None


# --- the REST connection: OAuth client credentials ----------------------------------


def rest_connection(crm: StandInCrm, **extra: Any) -> RestConnection:
    return RestConnection("crm", connection_settings(crm, **extra), CONFIG_DIR)


def patch(conn: RestConnection, record: str) -> int:
    path = f"/services/data/v61.0/sobjects/{OBJECT}/{record}"
    return conn.request("PATCH", path, {"Decision__c": "approve"}, correlation_id="c-1").status


def test_token_is_cached_until_near_expiry_then_renewed(crm: StandInCrm) -> None:
    conn = rest_connection(crm)
    now = [1000.0]
    assert conn.credentials is not None
    conn.credentials.clock = lambda: now[0]
    assert patch(conn, "R1") == 204
    assert patch(conn, "R1") == 204
    assert crm.tokens_issued == 1  # cached
    now[0] += 3600 - 61  # a minute before expiry: still used
    assert patch(conn, "R1") == 204
    assert crm.tokens_issued == 1
    now[0] += 2  # inside the renewal margin: a new one is fetched first
    assert patch(conn, "R1") == 204
    assert crm.tokens_issued == 2 and crm.unauthorised == 0
    assert crm.patches["R1"] == 4
    conn.close()


def test_a_401_refreshes_the_token_once(crm: StandInCrm) -> None:
    conn = rest_connection(crm)
    assert patch(conn, "R1") == 204
    crm.revoke_tokens()  # the CRM forgot the session: 401, a new token, success
    assert patch(conn, "R1") == 204
    assert crm.tokens_issued == 2 and crm.unauthorised == 1
    assert crm.patches["R1"] == 2
    conn.close()


def test_a_fresh_token_refused_too_is_retryable_and_does_not_loop(crm: StandInCrm) -> None:
    crm.token_seconds = -1  # every token is dead on arrival
    conn = rest_connection(crm)
    with pytest.raises(HttpStatusFailed) as raised:
        patch(conn, "R1")
    assert raised.value.status == 401 and raised.value.retryable
    assert crm.tokens_issued == 2 and crm.unauthorised == 2  # one refresh, then give up
    assert crm.patches["R1"] == 0
    conn.close()


def test_wrong_client_secret_is_an_auth_failure_worth_retrying(
    crm: StandInCrm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "not-the-secret")
    conn = rest_connection(crm)
    with pytest.raises(CallFailed) as raised:
        patch(conn, "R1")
    assert raised.value.reason == "auth" and raised.value.retryable
    assert "not-the-secret" not in str(raised.value)
    assert crm.patches["R1"] == 0
    conn.close()


def test_describe_shows_no_secret(crm: StandInCrm) -> None:
    conn = rest_connection(crm)
    assert CLIENT_SECRET not in orjson.dumps(conn.describe()).decode()
    assert conn.describe()["auth"]["client_secret_env"] == SECRET_ENV
    conn.close()


# --- the outbox: written with the decision, or not at all ---------------------------


def test_unusable_record_ids_are_recorded_failed_never_refuse_the_decision(
    crm_app: Flask, crm: StandInCrm
) -> None:
    engine = crm_app.extensions["loangate"].engine
    hostile = ["../../services/oauth2/token", "a b", "id?x=1", "ünïcode", "%2F.."]
    documents = [decide(crm_app, record) for record in hostile]
    # refused by the adapter (so without a record id), or sent without one: no row
    no_ids = [decide(crm_app, "x" * 201), decide(crm_app, ""), decide(crm_app, None)]
    for document in [*documents, *no_ids]:
        assert document["status"] in ("decided", "rejected"), document
    rows = outbox_rows(engine)
    assert not {d["decision_id"] for d in no_ids} & set(rows)
    for document in documents:
        row = rows[document["decision_id"]]
        assert row["status"] == "failed"
        assert row["last_error"] == "no usable CRM record id in the decision"
    assert Deliverer(engine, writeback_of(crm_app)).drain().claimed == 0
    assert not crm.patches and crm.tokens_issued == 0
    assert all(r["attempts"] == 0 for r in outbox_rows(engine).values())


def test_only_decisions_from_crm_adapters_get_an_outbox_row(crm_app: Flask) -> None:
    engine = crm_app.extensions["loangate"].engine
    from_crm = decide(crm_app, "a0B5g00000AbCdEEAV")
    from_rest = decide(crm_app, "LN-1", adapter="rest")
    rows = outbox_rows(engine)
    assert set(rows) == {from_crm["decision_id"]}
    assert from_rest["decision_id"] not in rows
    row = rows[from_crm["decision_id"]]
    assert row["status"] == "pending" and row["attempts"] == 0
    assert (row["connection"], row["object"], row["record_id"]) == (
        "crm",
        OBJECT,
        "a0B5g00000AbCdEEAV",
    )
    assert orjson.loads(row["payload"]) == {
        "Decision__c": from_crm["outcome"],
        "Probability_Of_Default__c": from_crm["probability_of_default"],
        "Decision_Id__c": from_crm["decision_id"],
        "Reason_Codes__c": ";".join(r["code"] for r in from_crm["reason_codes"]),
    }


def test_a_rejected_request_is_written_back_too(crm_app: Flask) -> None:
    engine = crm_app.extensions["loangate"].engine
    service = crm_app.extensions["loangate"].extras["decisions"]
    with crm_app.app_context():
        result = service.decide(
            "credit-risk",
            CRM_ADAPTER,
            orjson.dumps({"application_id": "REC-REJ", "applicant": {"age_in_years": "old"}}),
            {},
            ORG_CLIENT,
            "req",
        )
    assert result.document["status"] == "rejected"
    row = outbox_rows(engine)[result.document["decision_id"]]
    assert orjson.loads(row["payload"])["Decision__c"] == "rejected"


def test_outbox_row_and_decision_commit_together_or_not_at_all(crm_app: Flask) -> None:
    """With the outbox unwritable, the decision is refused (503) and not logged."""
    engine = crm_app.extensions["loangate"].engine
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE crm_outbox"))
    with pytest.raises(Problem) as raised:
        decide(crm_app, "REC-1")
    assert raised.value.status == 503
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM decisions")).scalar() == 0
    # and a decision of another adapter still goes through
    assert decide(crm_app, "LN-1", adapter="rest")["status"] == "decided"


# --- delivery ----------------------------------------------------------------------


def test_each_writeback_is_patched_once_with_the_mapped_fields(
    crm_app: Flask, crm: StandInCrm
) -> None:
    engine = crm_app.extensions["loangate"].engine
    documents = [decide(crm_app, f"REC-{i}", index=i) for i in range(5)]
    result = Deliverer(engine, writeback_of(crm_app)).drain()
    assert result.delivered == 5
    assert Deliverer(engine, writeback_of(crm_app)).drain().claimed == 0  # nothing left
    assert dict(crm.patches) == {f"REC-{i}": 1 for i in range(5)}
    for i, document in enumerate(documents):
        sent = crm.bodies[f"REC-{i}"][0]
        assert sent["Decision_Id__c"] == document["decision_id"]
        assert sent["Decision__c"] == document["outcome"]
    assert sorted(crm.correlation_ids) == sorted(d["decision_id"] for d in documents)
    for row in outbox_rows(engine).values():
        assert (row["status"], row["attempts"], row["last_status"]) == ("delivered", 1, 204)
        assert row["delivered_at"] is not None and row["claim_token"] is None


@pytest.mark.parametrize("status", [400, 403, 404, 422])
def test_a_4xx_fails_the_writeback_for_good(crm_app: Flask, crm: StandInCrm, status: int) -> None:
    engine = crm_app.extensions["loangate"].engine
    crm.statuses["REC-BAD"] = status
    bad = decide(crm_app, "REC-BAD")
    good = decide(crm_app, "REC-OK")
    deliverer = Deliverer(engine, writeback_of(crm_app))
    deliverer.drain()
    rows = outbox_rows(engine)
    assert rows[good["decision_id"]]["status"] == "delivered"
    failed = rows[bad["decision_id"]]
    assert (failed["status"], failed["attempts"], failed["last_status"]) == ("failed", 1, status)
    assert failed["last_error"] == f"http-error: {status}"
    time.sleep(0.3)  # past any backoff: still never tried again
    assert deliverer.drain().claimed == 0
    # reported: `loangate crm outbox --failed` lists it and exits 1
    from gateway.cli import main

    url = str(engine.url.render_as_string(hide_password=False))
    out = CliRunner().invoke(
        main, ["crm", "outbox", "--failed"], env={"LOANGATE_DATABASE__URL": url}
    )
    assert out.exit_code == 1, out.output
    assert "failed 1" in out.output and bad["decision_id"] in out.output
    assert f"last {status} http-error: {status}" in out.output
    # after the cause is fixed, an operator requeues it and it is delivered once
    del crm.statuses["REC-BAD"]
    out = CliRunner().invoke(
        main, ["crm", "requeue", bad["decision_id"]], env={"LOANGATE_DATABASE__URL": url}
    )
    assert out.output.strip() == "requeued 1 write-backs"
    deliverer.drain()
    assert outbox_rows(engine)[bad["decision_id"]]["status"] == "delivered"
    assert crm.patches["REC-BAD"] == 1


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_408_429_and_5xx_are_retried_with_backoff(
    crm_app: Flask, crm: StandInCrm, status: int
) -> None:
    engine = crm_app.extensions["loangate"].engine
    crm.statuses["REC-1"] = status
    document = decide(crm_app, "REC-1")
    deliverer = Deliverer(engine, writeback_of(crm_app))
    deliverer.drain()
    row = outbox_rows(engine)[document["decision_id"]]
    assert (row["status"], row["attempts"], row["last_status"]) == ("pending", 1, status)
    assert aware(row["next_attempt_at"]) > aware(row["created_at"])
    wait_for(lambda: deliverer.drain().retrying > 0, "a second attempt")
    assert outbox_rows(engine)[document["decision_id"]]["attempts"] == 2
    del crm.statuses["REC-1"]
    wait_for(lambda: deliverer.drain().delivered == 1, "the delivery")
    row = outbox_rows(engine)[document["decision_id"]]
    assert (row["status"], row["attempts"]) == ("delivered", 3)
    assert crm.patches["REC-1"] == 1


def test_backoff_grows_exponentially_up_to_the_cap(crm_app: Flask) -> None:
    wb = writeback_of(crm_app)
    deliverer = Deliverer(crm_app.extensions["loangate"].engine, wb, rand=lambda: 0.0)
    delays = [deliverer.delay_after(n) for n in range(1, 7)]
    assert delays == pytest.approx([0.05, 0.1, 0.2, 0.2, 0.2, 0.2])
    jittered = Deliverer(crm_app.extensions["loangate"].engine, wb, rand=lambda: 1.0)
    assert jittered.delay_after(1) == pytest.approx(0.025)


def test_a_writeback_older_than_max_age_is_given_up(crm_app: Flask, crm: StandInCrm) -> None:
    engine = crm_app.extensions["loangate"].engine
    crm.stop()
    document = decide(crm_app, "REC-1")
    later = outbox.utcnow() + timedelta(hours=73)  # default max age: 72 hours
    Deliverer(engine, writeback_of(crm_app), clock=lambda: later).drain()
    row = outbox_rows(engine)[document["decision_id"]]
    assert row["status"] == "failed" and row["attempts"] == 1
    assert row["last_error"].startswith("gave up after 1 attempts: unavailable")


def test_one_records_writebacks_land_in_decision_order(crm_app: Flask, crm: StandInCrm) -> None:
    engine = crm_app.extensions["loangate"].engine
    crm.statuses["REC-1"] = 503
    first = decide(crm_app, "REC-1", index=0)
    second = decide(crm_app, "REC-1", index=1)
    deliverer = Deliverer(engine, writeback_of(crm_app))
    deliverer.drain()
    rows = outbox_rows(engine)
    assert rows[first["decision_id"]]["attempts"] == 1
    assert rows[second["decision_id"]]["attempts"] == 0  # waits behind the first
    del crm.statuses["REC-1"]
    wait_for(
        lambda: (
            deliverer.drain() is not None
            and outbox_rows(engine)[second["decision_id"]]["status"] == "delivered"
        ),
        "both deliveries",
    )
    sent = [b["Decision_Id__c"] for b in crm.bodies["REC-1"]]
    assert sent == [first["decision_id"], second["decision_id"]]


def test_an_older_writeback_overtaken_by_a_newer_one_is_not_sent(
    crm_app: Flask, crm: StandInCrm
) -> None:
    """E.g. the older decision committed last: the record keeps the newer decision."""
    engine = crm_app.extensions["loangate"].engine
    first = decide(crm_app, "REC-1", index=0)
    second = decide(crm_app, "REC-1", index=1)
    with engine.begin() as conn:  # as if the first had not been committed yet
        conn.execute(
            sa.update(outbox.outbox)
            .where(outbox.c.decision_id == first["decision_id"])
            .values(status="failed")
        )
    deliverer = Deliverer(engine, writeback_of(crm_app))
    deliverer.drain()
    outbox.requeue(engine, [first["decision_id"]], outbox.utcnow())  # now it shows up
    assert deliverer.drain().superseded == 1
    assert [b["Decision_Id__c"] for b in crm.bodies["REC-1"]] == [second["decision_id"]]
    assert outbox_rows(engine)[first["decision_id"]]["status"] == "superseded"


def test_a_claim_left_by_a_crashed_worker_is_delivered_after_its_lease(
    crm_app: Flask, crm: StandInCrm
) -> None:
    """A worker claims the row and dies before sending: another delivers it once the
    lease ends, not before."""
    engine = crm_app.extensions["loangate"].engine
    document = decide(crm_app, "REC-1")
    now = outbox.utcnow()
    held = outbox.claim(engine, document["decision_id"], "dead-worker", now, 30)
    assert held is not None
    assert Deliverer(engine, writeback_of(crm_app)).drain().claimed == 0
    assert crm.patches["REC-1"] == 0
    after_lease = now + timedelta(seconds=31)
    Deliverer(engine, writeback_of(crm_app), clock=lambda: after_lease).drain()
    assert crm.patches["REC-1"] == 1
    assert outbox_rows(engine)[document["decision_id"]]["status"] == "delivered"
    # the dead worker's late result is ignored: it no longer holds the row
    assert not outbox.failed(engine, held, 500, "late")
    assert outbox_rows(engine)[document["decision_id"]]["status"] == "delivered"


def test_two_workers_never_deliver_the_same_writeback(crm_app: Flask, crm: StandInCrm) -> None:
    engine = crm_app.extensions["loangate"].engine
    records = [f"REC-{i}" for i in range(30)]
    for i, record in enumerate(records):
        decide(crm_app, record, index=i)
    wb = writeback_of(crm_app)
    workers = [Deliverer(engine, wb), Deliverer(engine, wb)]
    start = threading.Barrier(len(workers))
    totals = [0, 0]

    def work(n: int) -> None:
        start.wait()
        while True:
            result = workers[n].run_once()
            totals[n] += result.delivered
            if result.claimed == 0 and result.skipped == 0:
                return

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE_S)
    assert sum(totals) == len(records)
    assert dict(crm.patches) == dict.fromkeys(records, 1)


def test_the_commented_example_of_gateway_yaml_is_valid(crm: StandInCrm) -> None:
    lines = DEFAULT_CONFIG_FILE.read_text(encoding="utf-8").splitlines()

    def block(first: str) -> Any:
        start = next(i for i, line in enumerate(lines) if line.startswith(first))
        kept = [lines[start][2:]]
        for line in lines[start + 1 :]:
            if not line.startswith("#  "):  # the block's own lines are indented
                break
            kept.append(line[2:])
        return yaml.safe_load("\n".join(kept))

    section = block("# crm_writeback:")["crm_writeback"]
    connection = block("#   crm:")["crm"]
    assert connection["base_url"].startswith("https://")
    connection = {**connection, "base_url": crm.base_url}
    connection["auth"] = {**connection["auth"], "token_url": crm.token_url}
    connection["auth"].update(client_id_env=ID_ENV, client_secret_env=SECRET_ENV)
    writeback = _configure(section, {"crm": connection})
    assert writeback is not None and writeback.settings.adapters == {"salesforce"}
