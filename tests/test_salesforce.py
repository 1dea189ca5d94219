"""Salesforce Outbound Messaging in: one logged decision per notification, Ack only when logged.

On SQLite and PostgreSQL through the ``app``/``client`` fixtures; the sample message and WSDL of
docs/examples/salesforce/ are the inputs, checked against each other with zeep and lxml.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
import zeep
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters.salesforce import ids
from adapters.salesforce.message import OUTBOUND_NS, SOBJECT_NS
from adapters.soap.xml import SOAP11_ENV, SOAP12_ENV
from gateway.components import Services
from gateway.errors import ConfigError
from gateway.mappings import load_mapping
from tests.conftest import bearer, gateway_overrides, register_demo_model

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples" / "salesforce"
SAMPLE = (EXAMPLES / "notifications.xml").read_bytes()
WSDL = EXAMPLES / "loan-application-outbound.wsdl"
URL = "/v1/pipelines/credit-risk/salesforce"
ORG = "00D5g0000LoanGwEQI"  # the demo org on the allow-list of config/gateway.yaml
SAMPLE_NOTIFICATIONS = ("04l5g00000Sfdc1AAB", "04l5g00000Sfdc2AAB", "04l5g00000Sfdc3AAB")
SAMPLE_RECORDS = ("a015g00000LnAppAAF", "a015g00000LnAq2AAF", "a015g00000LnAq3AAF")
FAULT_NS = "{urn:loangate:salesforce:1}"
PERSONAL = {"age_in_years", "telephone"}  # class: personal in the input schema

#: What the sample's three records say, written out by hand as canonical applications.
SAMPLE_AS_JSON: list[dict[str, Any]] = [
    {
        "credit_amount": 2350,
        "duration_in_month": 24,
        "purpose": "radio/television",
        "installment_rate_in_percentage_of_disposable_income": 4,
        "age_in_years": 45,
        "present_employment_since": "... >= 7 years",
        "status_of_existing_checking_account": (
            "... >= 200 DM / salary assignments for at least 1 year"
        ),
        "savings_account_and_bonds": "... < 100 DM",
        "credit_history": "existing credits paid back duly till now",
        "housing": "own",
        "job": "skilled employee / official",
        "number_of_people_being_liable_to_provide_maintenance_for": 1,
        "number_of_existing_credits_at_this_bank": 1,
        "telephone": "yes, registered under the customers name",
    },
    {
        "credit_amount": 12500,
        "duration_in_month": 48,
        "purpose": "car (used)",
        "installment_rate_in_percentage_of_disposable_income": 3,
        "age_in_years": 36,
        "present_employment_since": "1 <= ... < 4 years",
        "status_of_existing_checking_account": "0 <= ... < 200 DM",
        "savings_account_and_bonds": "unknown/ no savings account",
        "credit_history": "existing credits paid back duly till now",
        "housing": "rent",
        "job": "skilled employee / official",
        "number_of_people_being_liable_to_provide_maintenance_for": 2,
        "telephone": "none",
    },
    {
        "credit_amount": 18901,  # 18900.5 rounded half up
        "duration_in_month": 60,
        "purpose": "business",
        "installment_rate_in_percentage_of_disposable_income": 4,
        "age_in_years": 23,
        "present_employment_since": "... < 1 year",
        "status_of_existing_checking_account": "... < 0 DM",
        "savings_account_and_bonds": "... < 100 DM",
        "credit_history": "delay in paying off in the past",
        "housing": "for free",
        "job": "unskilled - resident",
        "number_of_people_being_liable_to_provide_maintenance_for": 0,
        "number_of_existing_credits_at_this_bank": 2,
        "telephone": "none",
    },
]

# --- building messages ---------------------------------------------------------------------


def sfid(prefix: str, n: int) -> str:
    """An 18-character Id: a 3-character key prefix, then ``n``."""
    return ids.to18(f"{prefix}5g{n:010d}")


def sobject(record_id: str | None, **fields: str) -> str:
    """An sObject element (as Salesforce writes one) with ``fields`` (API name: text)."""
    parts = [f"<sf:Id>{record_id}</sf:Id>"] if record_id else []
    parts += [f"<sf:{name}>{value}</sf:{name}>" for name, value in fields.items()]
    return (
        f'<sObject xsi:type="sf:Loan_Application__c" xmlns:sf="{SOBJECT_NS}">'
        + "".join(parts)
        + "</sObject>"
    )


GOOD_FIELDS = {
    "Credit_Amount__c": "4200.0",
    "LastModifiedDate": "2026-11-30T09:15:00.000Z",
    "Purpose__c": "Furniture",
    "Term_Months__c": "18.0",
}


def message(notifications: Sequence[tuple[str, str]], org: str = ORG, extra: str = "") -> bytes:
    """A notifications message: (notification Id, sObject element) pairs."""
    body = "".join(
        f"<Notification><Id>{nid}</Id>{obj}</Notification>" for nid, obj in notifications
    )
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP11_ENV}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        f'<notifications xmlns="{OUTBOUND_NS}"><OrganizationId>{org}</OrganizationId>'
        '<ActionId>04k5g00000OutMsAAJ</ActionId><SessionId xsi:nil="true"/>'
        "<EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/62.0</EnterpriseUrl>"
        "<PartnerUrl>https://example.my.salesforce.com/services/Soap/u/62.0</PartnerUrl>"
        f"{extra}{body}</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def good(n: int, **changes: str) -> tuple[str, str]:
    """Notification ``n``: a valid record ``a01...n``."""
    return sfid("04l", n), sobject(sfid("a01", n), **{**GOOD_FIELDS, **changes})


def post(client: FlaskClient, body: bytes, url: str = URL, **headers: str) -> Any:
    return client.post(
        url, data=body, content_type=headers.pop("content_type", "text/xml"), headers=headers
    )


def acked(resp: Any) -> bool:
    """Whether ``resp`` (Flask's or requests') is a notificationsResponse with Ack true."""
    mimetype = resp.headers.get("Content-Type", "").split(";")[0]
    if resp.status_code != 200 or mimetype != "text/xml":
        return False
    return acked_body(getattr(resp, "data", None) or resp.content)


def acked_body(data: bytes) -> bool:
    ack = f"{{{SOAP11_ENV}}}Body/{{{OUTBOUND_NS}}}notificationsResponse/{{{OUTBOUND_NS}}}Ack"
    return etree.fromstring(data).findtext(ack) == "true"


def fault_of(resp: Any) -> dict[str, str | None]:
    """The SOAP 1.1 fault in ``resp``: code, string, and the detail's members."""
    assert resp.mimetype == "text/xml", resp.data
    root = etree.fromstring(resp.data)
    fault = root.find(f"{{{SOAP11_ENV}}}Body/{{{SOAP11_ENV}}}Fault")
    assert fault is not None, resp.data
    detail = fault.find(f"detail/{FAULT_NS}fault")
    assert detail is not None
    return {
        "faultcode": fault.findtext("faultcode"),
        "faultstring": fault.findtext("faultstring"),
        "code": detail.findtext(f"{FAULT_NS}code"),
        "retryable": detail.findtext(f"{FAULT_NS}retryable"),
        "path": detail.findtext(f".//{FAULT_NS}path"),
    }


def rows(app: Flask) -> list[dict[str, Any]]:
    """The salesforce decisions in the log, oldest first."""
    with app.extensions["loangate"].engine.connect() as conn:
        result = conn.execute(
            sa.text(
                "select id, client_id, application_id, idempotency_key, adapter, status_code "
                "from decisions order by id"
            )
        )
        return [dict(r._mapping) for r in result]


@pytest.fixture
def document(client: FlaskClient, get_token: Callable[..., str]) -> Callable[[str], Any]:
    """``document(decision_id)``: the logged decision, as an auditor reads it."""
    auditor = bearer(get_token("decisions:read"))

    def read(decision_id: str) -> Any:
        resp = client.get(f"/v1/decisions/{decision_id}", headers=auditor)
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()

    return read


def log_down(app: Flask, down: bool = True) -> None:
    """Make the decision log unavailable (its table gone), or bring it back."""
    old, new = ("decisions", "decisions_gone") if down else ("decisions_gone", "decisions")
    with app.extensions["loangate"].engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {old} RENAME TO {new}"))


# --- hostile input first: Client faults, nothing logged --------------------------------------

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>'
    + SAMPLE.split(b"?>", 1)[1].replace(b"<ActionId>", b"<ActionId>&lol2;", 1)
)

HOSTILE: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "malformed-request"),
    "malformed": (SAMPLE[:-40], "malformed-request"),
    "not an envelope": (b"<notifications/>", "malformed-request"),
    "entity bomb": (BILLION_LAUGHS, "malformed-request"),
    "external entity": (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        + message([good(1)]).replace(b"<ActionId>", b"<ActionId>&x;"),
        "malformed-request",
    ),
    "wrong namespace": (
        SAMPLE.replace(b"http://soap.sforce.com/2005/09/outbound", b"urn:not-salesforce"),
        "malformed-request",
    ),
    "another operation": (
        message([good(1)]).replace(b"notifications", b"notificationz"),
        "malformed-request",
    ),
    "missing OrganizationId": (
        re.sub(rb"<OrganizationId>.*?</OrganizationId>", b"", SAMPLE),
        "malformed-request",
    ),
    "malformed OrganizationId": (message([good(1)], org="00D-not-an-id"), "malformed-request"),
    "OrganizationId with a wrong suffix": (
        message([good(1)], org=ORG[:15] + "AAA"),
        "malformed-request",
    ),
    "not an organization": (message([good(1)], org=sfid("a01", 1)), "malformed-request"),
    "missing ActionId": (
        re.sub(rb"<ActionId>.*?</ActionId>", b"", SAMPLE),
        "malformed-request",
    ),
    "no notification": (message([]), "malformed-request"),
    "101 notifications": (message([good(i) for i in range(101)]), "malformed-request"),
    "malformed notification Id": (
        message([("04l<b>x</b>", sobject(sfid("a01", 1), **GOOD_FIELDS))]),
        "malformed-request",
    ),
    "notification without sObject": (
        message([good(1)]).replace(b"<sObject", b"<Other").replace(b"</sObject>", b"</Other>"),
        "malformed-request",
    ),
    "unknown element": (message([good(1)], extra="<Surprise>1</Surprise>"), "malformed-request"),
    "another record type": (
        message([good(1)]).replace(b"sf:Loan_Application__c", b"sf:Opportunity"),
        "unsupported-record-type",
    ),
    "SOAP 1.2": (
        SAMPLE.replace(SOAP11_ENV.encode(), SOAP12_ENV.encode()),
        "version-mismatch",
    ),
    "unknown organization": (message([good(1)], org=ids.to18("00D5g0000Strang")), "forbidden"),
}


def test_hostile_messages_are_client_faults_and_log_nothing(
    app: Flask, client: FlaskClient
) -> None:
    # One app for every case (building one is the slow part); each case names itself.
    for case, (body, code) in HOSTILE.items():
        resp = post(client, body)
        assert resp.status_code == 500, case  # SOAP 1.1: every fault is a 500 (WS-I R1126)
        fault = fault_of(resp)
        expected = "soap:VersionMismatch" if code == "version-mismatch" else "soap:Client"
        assert fault["faultcode"] == expected, (case, fault)
        assert fault["code"] == code and fault["retryable"] == "false", (case, fault)
        assert b"Traceback" not in resp.data and b"root:" not in resp.data, case
        assert rows(app) == [], case
    assert acked(post(client, SAMPLE))  # and the endpoint keeps answering
    assert len(rows(app)) == 3


def test_fault_names_the_element_at_fault(client: FlaskClient) -> None:
    bad = message([good(1), ("04l<b>x</b>", sobject(sfid("a01", 2), **GOOD_FIELDS))])
    fault = fault_of(post(client, bad))
    assert fault["path"] == "notifications/Notification[2]/Id"
    assert "Notification[2]/Id" in (fault["faultstring"] or "")


def test_huge_body_and_wrong_media_type_are_refused_before_parsing(
    app: Flask, client: FlaskClient
) -> None:
    huge = message([good(i) for i in range(100)]).replace(
        b"<SessionId", b"<!--" + b"x" * 1_100_000 + b"--><SessionId"
    )
    resp = post(client, huge)
    assert resp.status_code == 413 and fault_of(resp)["code"] == "payload-too-large"
    resp = post(client, SAMPLE, content_type="application/json")
    assert fault_of(resp)["code"] == "unsupported-media-type"
    assert fault_of(post(client, SAMPLE, URL.replace("credit-risk", "nope")))["code"] == (
        "not-found"
    )
    assert rows(app) == []


def test_a_full_message_of_100_notifications_is_accepted(app: Flask, client: FlaskClient) -> None:
    """100 records is more than server.max_body_bytes: the route has its own cap."""
    body = message([good(i, Name="X" * 400) for i in range(100)])
    assert len(body) > app.config["MAX_CONTENT_LENGTH"]
    assert acked(post(client, body))
    assert len(rows(app)) == 100


# --- the acceptance story ----------------------------------------------------------------


def test_three_notifications_yield_three_decisions_and_an_ack(
    app: Flask, client: FlaskClient, get_token: Callable[..., str], document: Any
) -> None:
    resp = post(client, SAMPLE)
    assert acked(resp), resp.data
    logged = rows(app)
    assert len(logged) == 3
    assert [r["application_id"] for r in logged] == list(SAMPLE_RECORDS)
    assert [r["idempotency_key"] for r in logged] == [
        f"sfdc-notification:{n}" for n in SAMPLE_NOTIFICATIONS
    ]
    assert {r["client_id"] for r in logged} == {f"salesforce:{ORG}"}
    assert {r["adapter"] for r in logged} == {"salesforce"}
    scorer = bearer(get_token("decisions:create"))
    for row, fields in zip(logged, SAMPLE_AS_JSON, strict=True):
        doc = document(row["id"])
        # Personal values are masked to an auditor: the rest must be as written out by hand,
        # and the same decision as the equivalent REST request proves the personal ones too.
        shown = {k: v for k, v in doc["application"].items() if k not in PERSONAL}
        assert doc["status"] == "decided"
        assert shown == {k: v for k, v in fields.items() if k not in PERSONAL}
        rest = client.post(
            "/v1/pipelines/credit-risk/decisions",
            json={"application_id": row["application_id"], "applicant": fields},
            headers=scorer,
        ).get_json()
        for member in ("probability_of_default", "outcome", "reason_codes", "imputations"):
            assert doc[member] == rest[member], member


def test_redelivery_yields_no_new_decision(app: Flask, client: FlaskClient) -> None:
    assert acked(post(client, SAMPLE))
    first = rows(app)
    for _ in range(2):
        assert acked(post(client, SAMPLE))
    assert rows(app) == first


def test_out_of_order_and_overlapping_redeliveries_decide_each_notification_once(
    app: Flask, client: FlaskClient, document: Any
) -> None:
    one, two, three = good(1), good(2), good(3)
    assert acked(post(client, message([two])))
    # Salesforce sends a record's latest data: the retry of notification 2 may differ.
    two_changed = good(2, Credit_Amount__c="9999.0")
    assert acked(post(client, message([three, two_changed, one])))
    assert acked(post(client, message([one, three])))
    logged = rows(app)
    assert [r["idempotency_key"] for r in logged] == [
        f"sfdc-notification:{sfid('04l', n)}" for n in (2, 3, 1)
    ]
    assert document(logged[0]["id"])["application"]["credit_amount"] == 4200  # first stands


def test_duplicate_notification_within_one_message_is_decided_once(
    app: Flask, client: FlaskClient
) -> None:
    assert acked(post(client, message([good(1), good(1)])))
    assert len(rows(app)) == 1


def test_log_down_is_a_server_fault_and_the_redelivery_is_decided_once(
    app: Flask, client: FlaskClient
) -> None:
    # The first notification of the message was logged by an earlier delivery.
    first = message([good(1)])
    assert acked(post(client, first))
    logged_before = rows(app)
    log_down(app)
    whole = message([good(1), good(2), good(3)])
    resp = post(client, whole)
    assert resp.status_code == 500 and resp.headers["Retry-After"] == "2"
    fault = fault_of(resp)
    assert fault["faultcode"] == "soap:Server" and fault["retryable"] == "true"
    assert fault["code"] == "log-unavailable"
    assert b"Ack" not in resp.data and b"outcome" not in resp.data
    log_down(app, down=False)
    assert acked(post(client, whole))
    assert acked(post(client, whole))  # and once more: still nothing new
    logged = rows(app)
    assert len(logged) == 3 and logged[0] == logged_before[0]


def test_rejected_records_are_logged_acknowledged_and_not_decided_again(
    app: Flask, client: FlaskClient, document: Any
) -> None:
    bad_amount = good(1, Credit_Amount__c="lots")
    unknown_pick = good(2, Purpose__c="Yacht")
    no_id = (sfid("04l", 3), sobject(None, **GOOD_FIELDS))
    missing_required = (sfid("04l", 4), sobject(sfid("a01", 4), Purpose__c="Repairs"))
    body = message([bad_amount, unknown_pick, no_id, missing_required])
    assert acked(post(client, body))
    logged = rows(app)
    assert [r["status_code"] for r in logged] == [422, 422, 422, 422]
    assert [r["application_id"] for r in logged] == [
        sfid("a01", 1),
        sfid("a01", 2),
        None,
        sfid("a01", 4),
    ]
    docs = [document(r["id"]) for r in logged]
    assert docs[0]["errors"][0]["pointer"] == "sf:Credit_Amount__c"
    assert docs[1]["errors"][0]["code"] == "code"
    assert docs[2]["errors"][0]["pointer"] == "sObject/sf:Id"
    assert {e["pointer"] for e in docs[3]["errors"]} == {
        "/applicant/credit_amount",
        "/applicant/duration_in_month",
    }
    assert acked(post(client, body))
    assert rows(app) == logged


def test_nil_and_absent_fields_are_imputed(app: Flask, client: FlaskClient, document: Any) -> None:
    nid, record = good(1, Housing__c="")
    nil = record.replace("<sf:Housing__c></sf:Housing__c>", '<sf:Housing__c xsi:nil="true"/>')
    assert 'xsi:nil="true"' in nil
    assert acked(post(client, message([(nid, nil)])))
    doc = document(rows(app)[0]["id"])
    assert doc["status"] == "decided"
    assert "housing" in {i["field"] for i in doc["imputations"]}


# --- settings: allow-list, secret, mapping -------------------------------------------------


def salesforce_app(db_url: str, tmp_path: Path, trained_model: Any, **config: Any) -> Flask:
    from gateway import create_app

    register_demo_model(db_url, tmp_path / "models", trained_model)
    overrides = gateway_overrides(db_url, tmp_path / "models")
    overrides["pipelines"] = {
        "credit-risk": {"adapters": ["rest", {"name": "salesforce", "config": config}]}
    }
    return create_app(overrides, instance_path=tmp_path / "instance")


@pytest.fixture
def secret_app(
    db_url: str, tmp_path: Path, trained_model: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Flask]:
    monkeypatch.setenv("SF_TEST_SECRET", "s3cret-of-the-endpoint-url")
    application = salesforce_app(
        db_url,
        tmp_path,
        trained_model,
        organizations=[ORG[:15]],  # a 15-character Id admits its 18-character form
        secret_env="SF_TEST_SECRET",
    )
    yield application
    application.extensions["loangate"].engine.dispose()


def test_the_url_secret_is_required_when_configured(
    secret_app: Flask, capfd: pytest.CaptureFixture[str]
) -> None:
    client = secret_app.test_client()
    for url in (URL, f"{URL}?secret=wrong", f"{URL}?secret="):
        fault = fault_of(post(client, SAMPLE, url))
        assert fault["code"] == "unauthorized"
    assert rows(secret_app) == []
    capfd.readouterr()
    assert acked(post(client, SAMPLE, f"{URL}?secret=s3cret-of-the-endpoint-url"))
    assert len(rows(secret_app)) == 3
    logged = capfd.readouterr().err
    assert '"event": "request"' in logged and URL in logged
    assert "s3cret" not in logged  # the access line has the path, never the query


def test_bad_settings_refuse_to_start(
    db_url: str, tmp_path: Path, trained_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SF_UNSET_SECRET", raising=False)
    with pytest.raises(ConfigError, match="SF_UNSET_SECRET"):
        salesforce_app(
            db_url, tmp_path, trained_model, organizations=[ORG], secret_env="SF_UNSET_SECRET"
        )
    with pytest.raises(ConfigError, match=r"organizations\.0"):
        salesforce_app(db_url, tmp_path, trained_model, organizations=[ORG[:15] + "ZZZ"])
    with pytest.raises(ConfigError, match="organizations"):
        salesforce_app(db_url, tmp_path, trained_model, organizations=[])
    doc = yaml.safe_load(
        (ROOT / "config" / "mappings" / "salesforce-loan-application.yaml").read_text()
    )
    doc["application_id"] = {"path": "sf:Name"}
    keyed = tmp_path / "keyed.yaml"
    keyed.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(ConfigError, match="application_id: the salesforce adapter sets it"):
        salesforce_app(db_url, tmp_path, trained_model, organizations=[ORG], mapping=str(keyed))


def test_openapi_and_pipeline_listing_show_the_route(
    client: FlaskClient, get_token: Callable[..., str]
) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    assert (
        "text/xml" in paths["/v1/pipelines/{pipeline}/salesforce"]["post"]["requestBody"]["content"]
    )
    described = client.get(
        "/v1/pipelines/credit-risk", headers=bearer(get_token("decisions:read"))
    ).get_json()
    assert "salesforce" in described["adapters"]


def test_the_adapter_decodes_one_record_alone(app: Flask) -> None:
    adapter = app.extensions["loangate"].extras["pipelines"]["credit-risk"].adapters["salesforce"]
    _, record = good(5)
    alone = record.replace(
        "<sObject ",
        f'<sObject xmlns="{OUTBOUND_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ',
    )
    inbound = adapter.decode(alone.encode(), {})
    assert inbound.application_id == sfid("a01", 5)
    assert inbound.fields == {
        "credit_amount": 4200,
        "duration_in_month": 18,
        "purpose": ("furniture/equipment"),
    }
    assert acked_body(adapter.encode({}))


# --- the sample against its WSDL -----------------------------------------------------------


def wsdl_schema() -> etree.XMLSchema:
    """The WSDL's three inline schemas as one lxml schema (imports resolved in memory)."""
    wsdl = etree.parse(str(WSDL))
    xsd = "http://www.w3.org/2001/XMLSchema"
    schemas = wsdl.findall(f".//{{{xsd}}}schema")
    by_ns = {s.get("targetNamespace"): s for s in schemas}

    class Inline(etree.Resolver):
        def resolve(self, url: str, pubid: str, context: object) -> Any:
            return self.resolve_string(etree.tostring(by_ns[url[len("inline:") :]]), context)

    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(Inline())
    for schema in schemas:
        for imp in schema.findall(f"{{{xsd}}}import"):
            imp.set("schemaLocation", "inline:" + imp.get("namespace", ""))
    driver = etree.fromstring(etree.tostring(by_ns[OUTBOUND_NS]), parser)
    return etree.XMLSchema(driver)


def test_the_sample_validates_against_the_wsdl_schema() -> None:
    schema = wsdl_schema()
    body = etree.fromstring(SAMPLE).find(f"{{{SOAP11_ENV}}}Body")
    assert body is not None
    payload = body[0]
    schema.assertValid(payload)
    wrong = etree.fromstring(message([good(1, Credit_Amount__c="lots")])).find(
        f"{{{SOAP11_ENV}}}Body"
    )
    assert wrong is not None and not schema.validate(wrong[0])  # the check can fail


def test_zeep_reads_the_wsdl_and_the_sample() -> None:
    client = zeep.Client(str(WSDL), settings=zeep.Settings(strict=True, forbid_dtd=True))
    operation = client.service._binding._operations["notifications"]
    assert operation.soapaction == ""
    envelope = etree.fromstring(SAMPLE)
    request = operation.input.deserialize(envelope)
    notes = request.Notification if hasattr(request, "Notification") else request["Notification"]
    assert [n.Id for n in notes] == list(SAMPLE_NOTIFICATIONS)
    assert [n.sObject.Id for n in notes] == list(SAMPLE_RECORDS)
    assert notes[2].sObject.Credit_Amount__c == 18900.5
    assert notes[0].sObject.Birthdate__c == date(1981, 7, 2)


# --- Ids and the mapping, as properties ----------------------------------------------------

ID15 = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    min_size=15,
    max_size=15,
)


@given(ID15)
def test_an_id_and_its_18_character_form_are_one(id15: str) -> None:
    full = ids.to18(id15)
    assert full[:15] == id15 and ids.to18(full) == full
    assert ids.to18(full[:15] + full[15:].lower()) == full  # the suffix is case-safe
    if id15.lower() != id15:  # a system that lost the case of the Id is caught
        with pytest.raises(ValueError):
            ids.to18(id15.lower() + full[15:])


PURPOSES = {
    "New_Car": "car (new)",
    "Used_Car": "car (used)",
    "Business": "business",
    "Other": "others",
}


@pytest.fixture(scope="module")
def mapping() -> Any:
    from plugins.validators.schema import SchemaValidator

    config = ROOT / "config"
    services = Services(config, config, None)  # type: ignore[arg-type]  # no models needed
    schema = SchemaValidator({"schema": "schemas/credit-application.yaml"}, services)
    return load_mapping("mappings/salesforce-loan-application.yaml", config, schema.input_schema())


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cents=st.integers(min_value=100, max_value=100_000_000),
    term=st.integers(min_value=1, max_value=120),
    purpose=st.sampled_from(sorted(PURPOSES)),
    born=st.dates(min_value=date(1900, 1, 1), max_value=date(2008, 11, 30)),
    phone=st.booleans(),
)
def test_the_mapping_reads_what_salesforce_writes(
    mapping: Any, cents: int, term: int, purpose: str, born: date, phone: bool
) -> None:
    amount = f"{cents // 100}.{cents % 100:02d}"
    xml = sobject(
        sfid("a01", 7),
        Birthdate__c=born.isoformat(),
        Credit_Amount__c=amount,
        Has_Telephone__c="true" if phone else "false",
        LastModifiedDate="2026-11-30T23:59:59.000Z",
        Purpose__c=purpose,
        Term_Months__c=f"{term}.0",
    )
    root = etree.fromstring(
        xml.replace(
            "<sObject ",
            '<sObject xmlns="http://soap.sforce.com/2005/09/outbound" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ',
            1,
        )
    )
    fields = mapping.apply(root).fields
    half_up = (cents + 50) // 100
    years = 2026 - born.year - ((born.month, born.day) > (11, 30))
    assert fields == {
        "credit_amount": half_up,
        "duration_in_month": term,
        "purpose": PURPOSES[purpose],
        "age_in_years": years,
        "telephone": "yes, registered under the customers name" if phone else "none",
    }
