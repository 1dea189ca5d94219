"""The SOAP adapter in process: WSDL, routing, faults, hardened XML, WS-Security, idempotency.

Requests are envelopes built by a zeep client from the served WSDL (not project code) or
written out by hand, as a legacy caller would.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
import sqlalchemy as sa
import zeep
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from werkzeug.test import TestResponse

from adapters.soap.adapter import SoapBinding
from adapters.soap.wsdl import namespace
from adapters.soap.wssecurity import (
    PASSWORD_DIGEST,
    WSSE,
    WSU,
    digest_key_file,
    enable_password_digest,
)
from adapters.soap.xml import SOAP11_ENV, SOAP12_ENV, XMLRefused, envelope, parse
from gateway.auth.clients import create_client
from plugins.validators.schema import SchemaValidator
from tests.conftest import bearer
from tests.helpers import applicant

URL = "/soap/credit-risk"
TNS = namespace("credit-risk")
ACTION = f"{TNS}/ScoreApplication"
NS = {"s": SOAP11_ENV, "e": SOAP12_ENV, "lg": TNS}


# --- helpers ------------------------------------------------------------------------


def wsdl_client(app: Flask, tmp_path: Path, version: str = "1.1") -> Any:
    """A zeep client built from the WSDL the gateway serves (for building envelopes)."""
    text = app.test_client().get(f"{URL}?wsdl").data
    path = tmp_path / "credit-risk.wsdl"
    path.write_bytes(text)
    client = zeep.Client(str(path))
    return client, client.bind("CreditRiskService", "Soap11" if version == "1.1" else "Soap12")


def envelope_of(
    client_and_service: Any, operation: str = "ScoreApplication", **kwargs: Any
) -> bytes:
    """The envelope a zeep client sends for ``operation`` (``Client.create_message``)."""
    client, service = client_and_service
    return bytes(etree.tostring(client.create_message(service, operation, **kwargs)))


def raw(inner: str, header: str = "", version: str = "1.1") -> bytes:
    env = SOAP11_ENV if version == "1.1" else SOAP12_ENV
    return (
        f'<s:Envelope xmlns:s="{env}" xmlns:lg="{TNS}"><s:Header>{header}</s:Header>'
        f"<s:Body>{inner}</s:Body></s:Envelope>"
    ).encode()


def applicant_xml(fields: dict[str, Any]) -> str:
    return "".join(f"<lg:{k}>{escape(str(v))}</lg:{k}>" for k, v in fields.items())


def score_xml(fields: dict[str, Any]) -> str:
    """A hand-written ``ScoreApplication`` body element."""
    inner = applicant_xml(fields)
    return f"<lg:ScoreApplication><lg:applicant>{inner}</lg:applicant></lg:ScoreApplication>"


def post(
    client: FlaskClient, data: bytes, token: str | None = None, version: str = "1.1", **headers: str
) -> TestResponse:
    if version == "1.1":
        hdrs = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION}"'}
    else:
        hdrs = {"Content-Type": f'application/soap+xml; charset=utf-8; action="{ACTION}"'}
    if token:
        hdrs.update(bearer(token))
    hdrs.update(headers)
    return client.post(URL, data=data, headers=hdrs)


def fault_of(resp: TestResponse) -> dict[str, Any]:
    """code, message and detail of a fault response (either SOAP version)."""
    doc = etree.fromstring(resp.data)
    fault = doc.find(".//s:Fault", NS)
    if fault is not None:
        code, message = fault.findtext("faultcode"), fault.findtext("faultstring")
    else:
        fault = doc.find(".//e:Fault", NS)
        assert fault is not None, resp.data
        code = fault.findtext("e:Code/e:Value", namespaces=NS)
        message = fault.findtext("e:Reason/e:Text", namespaces=NS)
    detail = fault.find(".//{*}fault")  # in the namespace of the pipeline asked for
    assert detail is not None
    errors = list(detail.iterfind(".//{*}error"))
    return {
        "code": code,
        "message": message,
        "reason": detail.findtext("{*}code"),
        "fields": [e.findtext("{*}field") for e in errors],
        "paths": [e.findtext("{*}path") for e in errors],
        "decision_id": detail.findtext("{*}decisionId"),
        "retryable": detail.findtext("{*}retryable"),
        "subcode": fault.findtext("e:Code/e:Subcode/e:Value", namespaces=NS),
    }


def count_decisions(app: Flask) -> int:
    with app.extensions["loangate"].engine.connect() as conn:
        return int(conn.execute(sa.text("select count(*) from decisions")).scalar_one())


@pytest.fixture
def scorer(get_token: Callable[..., str]) -> str:
    return get_token("decisions:create")


# --- WSDL and the happy path ------------------------------------------------------------


def test_wsdl_types_follow_the_input_schema(client: FlaskClient) -> None:
    resp = client.get(f"{URL}?wsdl")
    assert resp.status_code == 200 and resp.mimetype == "text/xml"
    doc = etree.fromstring(resp.data)
    xsd = {"xsd": "http://www.w3.org/2001/XMLSchema", "w": "http://schemas.xmlsoap.org/wsdl/"}
    fields = doc.findall(".//xsd:complexType[@name='Applicant']/xsd:all/xsd:element", xsd)
    by_name = {f.get("name"): f for f in fields}
    assert len(by_name) == 20
    duration = by_name["duration_in_month"]  # required: no minOccurs=0
    assert duration.get("minOccurs") is None
    assert duration.find(".//xsd:restriction", xsd).get("base") == "xsd:int"
    assert duration.find(".//xsd:maxInclusive", xsd).get("value") == "120"
    assert by_name["housing"].get("minOccurs") == "0"
    values = {e.get("value") for e in by_name["housing"].iterfind(".//xsd:enumeration", xsd)}
    assert {"rent", "own", "for free"} <= values
    bindings = {b.get("name") for b in doc.iterfind("w:binding", xsd)}
    assert bindings == {"CreditRiskSoap11Binding", "CreditRiskSoap12Binding"}
    addresses = [a.get("location") for a in doc.iterfind(".//w:port/*", xsd)]
    assert addresses == ["http://localhost/soap/credit-risk"] * 2


def test_unknown_pipeline_is_a_client_fault(client: FlaskClient) -> None:
    resp = client.get("/soap/nope?wsdl")
    assert resp.status_code == 500 and fault_of(resp)["reason"] == "not-found"


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_decision_matches_rest_and_is_logged_as_soap(
    app: Flask, client: FlaskClient, scorer: str, tmp_path: Path, version: str
) -> None:
    service = wsdl_client(app, tmp_path, version)
    data = envelope_of(service, applicationId="LN-S1", applicant=applicant(1))
    resp = post(client, data, scorer, version)
    assert resp.status_code == 200, resp.data
    assert resp.mimetype == ("text/xml" if version == "1.1" else "application/soap+xml")
    decision = etree.fromstring(resp.data).find(".//lg:decision", NS)
    rest = client.post(
        "/v1/pipelines/credit-risk/decisions",
        json={"applicant": applicant(1)},
        headers=bearer(scorer),
    ).get_json()
    assert (
        float(decision.findtext("lg:probabilityOfDefault", namespaces=NS))
        == (rest["probability_of_default"])
    )
    assert decision.findtext("lg:outcome", namespaces=NS) == rest["outcome"]
    codes = [c.text for c in decision.iterfind("lg:reasonCodes/lg:reasonCode/lg:code", NS)]
    assert codes == [r["code"] for r in rest["reason_codes"]]
    stored = (
        app.extensions["loangate"]
        .extras["decision_log"]
        .get(decision.findtext("lg:decisionId", namespaces=NS))
        .parsed()
    )
    assert set(stored["application"]["age_in_years"]) == {"$pii"}  # sealed at rest
    stored = app.extensions["loangate"].extras["personal_data"].reveal(stored, can_read=True)
    assert stored["adapter"] == "soap" and stored["application_id"] == "LN-S1"
    assert stored["application"] == applicant(1)


def test_idempotency_header_and_ws_addressing_message_id(
    app: Flask, client: FlaskClient, scorer: str
) -> None:
    inner = score_xml(applicant(2))
    before = count_decisions(app)
    for header in (
        "<lg:IdempotencyKey>key-1</lg:IdempotencyKey>",
        '<wsa:MessageID xmlns:wsa="http://www.w3.org/2005/08/addressing">urn:uuid:1</wsa:MessageID>',
    ):
        first = post(client, raw(inner, header), scorer)
        again = post(client, raw(inner, header, "1.2"), scorer, "1.2")  # the other version too
        assert first.status_code == again.status_code == 200, fault_of(again)
        ids = [
            etree.fromstring(r.data).findtext(".//lg:decisionId", namespaces=NS)
            for r in (first, again)
        ]
        assert ids[0] == ids[1]
        assert etree.fromstring(again.data).findtext(".//lg:replayed", namespaces=NS) == "true"
    assert count_decisions(app) == before + 2
    other = raw(
        inner.replace("<lg:housing>own", "<lg:housing>rent"),
        "<lg:IdempotencyKey>key-1</lg:IdempotencyKey>",
    )
    conflict = post(client, other, scorer)
    assert fault_of(conflict)["reason"] == "idempotency-conflict"


def test_get_decision_needs_the_read_scope(
    app: Flask, client: FlaskClient, scorer: str, get_token: Callable[..., str], tmp_path: Path
) -> None:
    service = wsdl_client(app, tmp_path)
    made = post(client, envelope_of(service, applicant=applicant(3)), scorer)
    decision_id = etree.fromstring(made.data).findtext(".//lg:decisionId", namespaces=NS)
    ask = envelope_of(service, "GetDecision", decisionId=decision_id)
    headers = {"SOAPAction": f'"{TNS}/GetDecision"'}
    denied = post(client, ask, scorer, **headers)
    assert fault_of(denied)["reason"] == "insufficient-scope"
    got = post(client, ask, get_token("decisions:read"), **headers)
    assert got.status_code == 200, fault_of(got)
    assert etree.fromstring(got.data).findtext(".//lg:decisionId", namespaces=NS) == decision_id
    missing = post(
        client,
        envelope_of(service, "GetDecision", decisionId="X" * 26),
        get_token("decisions:read"),
        **headers,
    )
    assert fault_of(missing)["reason"] == "not-found"
    # the read is on the access trail (the refused and the missing ones are not)
    with app.extensions["loangate"].engine.connect() as conn:
        trail = conn.execute(sa.text("SELECT channel, action, params FROM access_trail")).all()
    assert [(t.channel, t.action) for t in trail] == [("soap", "GetDecision")]
    assert decision_id in trail[0].params


# --- faults -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_invalid_field_is_a_client_fault_naming_it_and_logged(
    app: Flask, client: FlaskClient, scorer: str, tmp_path: Path, version: str
) -> None:
    service = wsdl_client(app, tmp_path, version)
    data = envelope_of(service, applicant={**applicant(1), "duration_in_month": 500})
    resp = post(client, data, scorer, version)
    assert resp.status_code == (500 if version == "1.1" else 400)
    fault = fault_of(resp)
    assert fault["code"] == ("soap:Client" if version == "1.1" else "env:Sender")
    assert fault["fields"] == ["duration_in_month"]
    assert fault["paths"] == ["ScoreApplication/applicant/duration_in_month"]
    assert "duration_in_month" in fault["message"]
    stored = app.extensions["loangate"].extras["decision_log"].get(fault["decision_id"]).parsed()
    assert stored["status"] == "rejected" and stored["adapter"] == "soap"


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"purpose": "business", "credit_amount": 100}, "duration_in_month", "required"),
        (
            {"duration_in_month": "twelve", "purpose": "business", "credit_amount": 1},
            "duration_in_month",
            "type",
        ),
        (
            {"duration_in_month": "12.5", "purpose": "business", "credit_amount": 1},
            "duration_in_month",
            "type",
        ),
        (
            {
                "duration_in_month": 12,
                "purpose": "business",
                "credit_amount": 1,
                "age_in_years": "",
            },
            "age_in_years",
            "type",
        ),
        ({"duration_in_month": 12, "purpose": "spaceship", "credit_amount": 1}, "purpose", "enum"),
        (
            {"duration_in_month": 12, "purpose": "business", "credit_amount": 1, "shoe_size": 9},
            "shoe_size",
            "unknown",
        ),
    ],
)
def test_hand_written_bad_fields(
    client: FlaskClient, scorer: str, fields: dict[str, Any], field: str, code: str
) -> None:
    inner = score_xml(fields)
    fault = fault_of(post(client, raw(inner), scorer))
    assert fault["code"] == "soap:Client"
    assert field in fault["fields"], fault
    assert fault["reason"] == "validation-error"
    del code  # the field-level code is in the record; the test pins the field named


def test_wrong_namespace_unknown_operation_and_action_mismatch(
    client: FlaskClient, scorer: str
) -> None:
    wrong_ns = raw('<ScoreApplication xmlns="urn:other"><applicant/></ScoreApplication>')
    assert fault_of(post(client, wrong_ns, scorer))["reason"] == "unknown-operation"
    unknown = raw("<lg:DeleteEverything/>")
    assert fault_of(post(client, unknown, scorer))["reason"] == "unknown-operation"
    inner = "<lg:GetDecision><lg:decisionId>x</lg:decisionId></lg:GetDecision>"
    mismatch = post(client, raw(inner), scorer)  # SOAPAction says ScoreApplication
    assert fault_of(mismatch)["reason"] == "action-mismatch"
    unqualified = raw(
        "<lg:ScoreApplication><applicant><purpose>x</purpose></applicant></lg:ScoreApplication>"
    )
    fault = fault_of(post(client, unqualified, scorer))
    assert fault["reason"] == "validation-error" and "applicant" in fault["fields"]


def test_envelope_errors(client: FlaskClient, scorer: str) -> None:
    other = b'<s:Envelope xmlns:s="urn:not-soap"><s:Body/></s:Envelope>'
    assert fault_of(post(client, other, scorer))["code"] == "soap:VersionMismatch"
    assert fault_of(post(client, b"<a><b></a>", scorer))["reason"] == "malformed-request"
    assert fault_of(post(client, b"", scorer))["reason"] == "malformed-request"
    assert fault_of(post(client, b"<just-xml/>", scorer))["reason"] == "malformed-request"
    must = raw(
        "<lg:ScoreApplication/>",
        '<x:Trace xmlns:x="urn:x" s:mustUnderstand="1">1</x:Trace>',
    )
    assert fault_of(post(client, must, scorer))["code"] == "soap:MustUnderstand"
    json_body = client.post(URL, json={"a": 1}, headers=bearer(scorer))
    assert fault_of(json_body)["reason"] == "unsupported-media-type"


def test_no_credentials_is_a_client_fault_and_nothing_logged(
    app: Flask, client: FlaskClient
) -> None:
    inner = score_xml(applicant(1))
    before = count_decisions(app)
    fault = fault_of(post(client, raw(inner)))
    assert fault["code"] == "soap:Client" and fault["reason"] == "unauthorized"
    expired = fault_of(post(client, raw(inner), "not-a-jwt"))
    assert expired["reason"] == "invalid-token"
    assert count_decisions(app) == before


def test_log_unavailable_is_a_retryable_server_fault(
    app: Flask, client: FlaskClient, scorer: str
) -> None:
    with app.extensions["loangate"].engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE decisions RENAME TO decisions_gone"))
    inner = score_xml(applicant(1))
    for version, code in (("1.1", "soap:Server"), ("1.2", "env:Receiver")):
        resp = post(client, raw(inner, version=version), scorer, version)
        assert resp.status_code == 500 and resp.headers["Retry-After"] == "2"
        fault = fault_of(resp)
        assert fault["code"] == code and fault["retryable"] == "true"
        assert b"outcome" not in resp.data and b"Traceback" not in resp.data


# --- hardened XML -------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&lol9;</s:Body></s:Envelope>"""


def xxe(path: Path) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{path}">]>'
        f'<s:Envelope xmlns:s="{SOAP11_ENV}" xmlns:lg="{TNS}"><s:Body><lg:ScoreApplication>'
        "<lg:applicationId>&x;</lg:applicationId></lg:ScoreApplication></s:Body></s:Envelope>"
    ).encode()


def test_attacks_are_client_faults_and_the_server_keeps_answering(
    app: Flask, client: FlaskClient, scorer: str, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening it for reading would block: the request returning proves it was not
    external_dtd = (
        f'<?xml version="1.0"?><!DOCTYPE s:Envelope SYSTEM "file://{fifo}">'
        f'<s:Envelope xmlns:s="{SOAP11_ENV}"><s:Body/></s:Envelope>'
    ).encode()
    deep = b"<a>" * 5_000 + b"</a>" * 5_000  # past libxml2's depth limit (256), under the cap
    utf16_doctype = (
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>'
    ).encode("utf-16")
    before = count_decisions(app)
    for attack in (BILLION_LAUGHS, xxe(secret), xxe(fifo), external_dtd, deep, utf16_doctype):
        resp = post(client, attack, scorer)
        assert resp.status_code == 500, resp.data[:200]
        fault = fault_of(resp)
        assert fault["code"] == "soap:Client" and fault["reason"] == "malformed-request"
        assert b"TOP-SECRET" not in resp.data and b"lollol" not in resp.data
    big = b"<a>" + b"x" * (10 * 1024 * 1024) + b"</a>"
    resp = post(client, big, scorer)
    assert resp.status_code == 413 and fault_of(resp)["reason"] == "payload-too-large"
    assert count_decisions(app) == before
    inner = score_xml(applicant(1))
    assert post(client, raw(inner), scorer).status_code == 200


def test_parser_refuses_entities_without_a_doctype_scan() -> None:
    # Past the byte scan (an encoding it cannot see), the parsed tree is still refused.
    body = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r SYSTEM "http://127.0.0.1:9/x"><r/>'
    with pytest.raises(XMLRefused):
        parse(body.encode("utf-16"))


# --- WS-Security --------------------------------------------------------------------------


def username_token(
    user: str,
    secret: str,
    *,
    digest: bool = True,
    nonce: bytes | None = None,
    created: str | None = None,
) -> str:
    nonce = nonce if nonce is not None else os.urandom(16)
    created = created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if digest:
        pwd = base64.b64encode(
            hashlib.sha1(nonce + created.encode() + secret.encode()).digest()
        ).decode()
        ptype = f' Type="{PASSWORD_DIGEST}"'
    else:
        pwd, ptype = secret, ""
    return (
        f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"><wsse:UsernameToken>'
        f"<wsse:Username>{user}</wsse:Username><wsse:Password{ptype}>{pwd}</wsse:Password>"
        f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
        f"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>"
    )


@pytest.fixture
def wsse_client(app: Flask) -> tuple[str, str]:
    state = app.extensions["loangate"]
    client_id, secret = create_client(state.engine, "legacy", ["decisions:create"])
    enable_password_digest(state.engine, digest_key_file(state.instance_path), client_id, secret)
    return client_id, secret


def decisions_of(app: Flask, client_id: str) -> list[str]:
    with app.extensions["loangate"].engine.connect() as conn:
        return list(
            conn.execute(
                sa.text("select adapter from decisions where client_id = :c"), {"c": client_id}
            ).scalars()
        )


def test_ws_security_digest_right_wrong_replayed_expired(
    app: Flask, client: FlaskClient, wsse_client: tuple[str, str]
) -> None:
    client_id, secret = wsse_client
    inner = score_xml(applicant(1))
    token = username_token(client_id, secret)
    ok = post(client, raw(inner, token))
    assert ok.status_code == 200, ok.data
    assert decisions_of(app, client_id) == ["soap"]

    replay = fault_of(post(client, raw(inner, token, "1.2"), version="1.2"))
    assert replay["code"] == "env:Sender" and replay["reason"] == "replayed-nonce"
    assert replay["subcode"] == "sub:InvalidSecurity"
    wrong = fault_of(post(client, raw(inner, username_token(client_id, secret + "x"))))
    assert wrong["code"] == "soap:Client" and wrong["reason"] == "unauthorized"
    old = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    expired = fault_of(post(client, raw(inner, username_token(client_id, secret, created=old))))
    assert expired["reason"] == "message-expired"
    stranger = fault_of(post(client, raw(inner, username_token("lgc_nobody", secret))))
    assert stranger["reason"] == "unauthorized"
    assert decisions_of(app, client_id) == ["soap"]


def test_ws_security_password_text_only_over_tls_or_loopback(
    app: Flask, client: FlaskClient, wsse_client: tuple[str, str]
) -> None:
    client_id, secret = wsse_client
    inner = score_xml(applicant(1))
    text = username_token(client_id, secret, digest=False)
    headers = {"Content-Type": "text/xml", "SOAPAction": ACTION}
    remote = client.post(
        URL, data=raw(inner, text), headers=headers, environ_base={"REMOTE_ADDR": "10.1.2.3"}
    )
    assert fault_of(remote)["reason"] == "insecure-transport"
    over_tls = client.post(
        URL, data=raw(inner, username_token(client_id, secret, digest=False)), headers=headers,
        base_url="https://gateway.example", environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )  # fmt: skip
    assert over_tls.status_code == 200, over_tls.data
    assert (
        post(client, raw(inner, username_token(client_id, secret, digest=False))).status_code == 200
    )
    assert decisions_of(app, client_id) == ["soap", "soap"]


def test_digest_needs_opt_in(app: Flask, client: FlaskClient) -> None:
    client_id, secret = create_client(
        app.extensions["loangate"].engine, "plain", ["decisions:create"]
    )
    inner = "<lg:ScoreApplication><lg:applicant/></lg:ScoreApplication>"
    fault = fault_of(post(client, raw(inner, username_token(client_id, secret))))
    assert fault["reason"] == "unauthorized"


def test_scopes_apply_to_ws_security(app: Flask, client: FlaskClient) -> None:
    client_id, secret = create_client(
        app.extensions["loangate"].engine, "reader", ["decisions:read"]
    )
    inner = "<lg:ScoreApplication><lg:applicant/></lg:ScoreApplication>"
    fault = fault_of(post(client, raw(inner, username_token(client_id, secret, digest=False))))
    assert fault["reason"] == "insufficient-scope"


def test_expired_nonces_are_purged(
    app: Flask, wsse_client: tuple[str, str], client: FlaskClient
) -> None:
    client_id, secret = wsse_client
    inner = "<lg:ScoreApplication><lg:applicant/></lg:ScoreApplication>"
    post(client, raw(inner, username_token(client_id, secret)))
    wss = app.extensions["loangate"].extras["soap"].wssecurity
    assert wss.purge(datetime.now(UTC)) == 0
    assert wss.purge(datetime.now(UTC) + timedelta(minutes=5)) == 1


# --- round trip ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def binding_and_client(tmp_path_factory: pytest.TempPathFactory) -> tuple[SoapBinding, Any, Any]:
    from gateway.components import Services
    from gateway.config import DEFAULT_CONFIG_FILE

    services = Services(DEFAULT_CONFIG_FILE.parent, tmp_path_factory.mktemp("i"), None)  # type: ignore[arg-type]
    validator = SchemaValidator({"schema": "schemas/credit-application.yaml"}, services)
    schema = validator.input_schema()
    binding = SoapBinding.build("credit-risk", schema)
    path = tmp_path_factory.mktemp("w") / "w.wsdl"
    path.write_text(binding.wsdl_text)
    return binding, zeep.Client(str(path)), schema


def _applicants(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for name, prop in schema["properties"].items():
        inner = next((o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"), prop)
        if inner["type"] == "integer":
            value: st.SearchStrategy[Any] = st.integers(
                int(inner["minimum"]), int(inner["maximum"])
            )
        else:
            value = st.sampled_from(inner["enum"])
        parts[name] = value if name in schema["required"] else st.none() | value
    return st.fixed_dictionaries(parts)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_round_trip_zeep_client_to_adapter(
    binding_and_client: tuple[SoapBinding, Any, Any], data: st.DataObject
) -> None:
    binding, client, schema = binding_and_client
    fields = data.draw(_applicants(schema))
    app_id = data.draw(
        st.none()
        | st.text(
            st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=40
        )
    )
    version = data.draw(st.sampled_from(["Soap11", "Soap12"]))
    service = client.bind("CreditRiskService", version)
    sent = {k: v for k, v in fields.items() if v is not None}
    node = client.create_message(service, "ScoreApplication", applicationId=app_id, applicant=sent)
    env = envelope(parse(etree.tostring(node)))
    inbound = binding.decode_application(env)
    assert dict(inbound.fields) == sent
    assert inbound.application_id == app_id
