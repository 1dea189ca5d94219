"""The direct reader of plain ScoreApplication bodies (adapters/soap/decode.py) against zeep.

For hand-written bodies of every kind — plain ones, and ones with unknown, repeated, misplaced,
unqualified, empty or nil elements, attributes, child elements, stray text, numbers off the XSD
lexical space and header entries — the binding with the direct reader must answer exactly what
the binding with zeep alone answers: the same fields in the same order, application id and
idempotency key, or the same problem with the same field errors.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
import zeep
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters.soap.adapter import SoapBinding
from adapters.soap.xml import SOAP11_ENV, SOAP12_ENV, XMLRefused, envelope, parse
from gateway.errors import Problem
from plugins.validators.schema import SchemaValidator
from tests.helpers import applicants

TNS = "urn:loangate:soap:credit-risk"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
WSA = "http://www.w3.org/2005/08/addressing"


@pytest.fixture(scope="module")
def bindings(tmp_path_factory: pytest.TempPathFactory) -> tuple[SoapBinding, SoapBinding, Any]:
    """(binding with the direct reader, the same binding reading through zeep only, schema)."""
    from gateway.components import Services
    from gateway.config import DEFAULT_CONFIG_FILE

    services = Services(DEFAULT_CONFIG_FILE.parent, tmp_path_factory.mktemp("i"), None)  # type: ignore[arg-type]
    schema = SchemaValidator({"schema": "schemas/credit-application.yaml"}, services).input_schema()
    binding = SoapBinding.build("credit-risk", schema)
    assert binding.reader is not None
    return binding, dataclasses.replace(binding, reader=None), schema


def answer(binding: SoapBinding, body: bytes) -> Any:
    """What decoding ``body`` gives: the inbound application, or the problem."""
    try:
        env = envelope(parse(body))
    except XMLRefused:
        return "not an envelope"
    try:
        inbound = binding.decode_application(env)
    except Problem as problem:
        return ("problem", problem.status, problem.slug, problem.detail, problem.errors)
    return (list(inbound.fields.items()), inbound.application_id, inbound.idempotency_key)


def wrap(inner: str, header: str = "", version: str = "1.1") -> bytes:
    env = SOAP11_ENV if version == "1.1" else SOAP12_ENV
    head = f"<s:Header>{header}</s:Header>" if header else ""
    return (
        f'<s:Envelope xmlns:s="{env}" xmlns:lg="{TNS}" xmlns:xsi="{XSI}" xmlns:wsa="{WSA}">'
        f"{head}<s:Body>{inner}</s:Body></s:Envelope>"
    ).encode()


#: Text that may stand for a field's value: the field's own values, numbers on and off XSD's
#: lexical space, blanks and odd text.
ODD_VALUES = [
    "", " ", " 12 ", "+7", "-0", "007", "1_000", "\u0663", "12.5", "1e3", " 1.5e2 ", "NaN",
    "INF", "-INF", "+INF", "inf", "Infinity", "0x10", "9" * 40, "A11", " A11", "x&amp;y",
    "<lg:x/>", "a<!-- c -->b", "<![CDATA[12]]>",
]  # fmt: skip
ROWS = applicants()[:50]


@st.composite
def bodies(draw: st.DrawFn, schema: dict[str, Any]) -> bytes:
    """A hand-written ScoreApplication envelope, plain or with one or a few odd parts."""
    row = draw(st.sampled_from(ROWS))
    rare = 1 if draw(st.booleans()) else 1000  # half the bodies are mostly plain
    names = list(schema["properties"])
    kept = [n for n in names if draw(st.booleans()) or n in schema["required"]]
    if draw(st.integers(0, 9)) == 0:
        kept = draw(st.permutations(kept))  # xsd:all: any order
    parts = []
    for name in kept:
        value = escape(str(row[name]))
        if draw(st.integers(0, 7 * rare)) == 0:
            value = draw(st.sampled_from(ODD_VALUES))
        tag = f"lg:{name}"
        attrs = ""
        odd = draw(st.integers(0, 30 * rare))
        if odd == 0:
            tag = name  # unqualified
        elif odd == 1:
            attrs = ' xsi:nil="true"'
            value = draw(st.sampled_from(["", value]))
        elif odd == 2:
            attrs = ' xsi:type="xsd:string"'
        elif odd == 3:
            parts.append(f"<{tag}>{value}</{tag}>")  # twice
        elif odd == 4:
            value = f"<lg:inner>{value}</lg:inner>"
        parts.append(f"<{tag}{attrs}>{value}</{tag}>")
        if draw(st.integers(0, 40 * rare)) == 0:
            parts.append(draw(st.sampled_from(["tail", "<lg:shoe_size>9</lg:shoe_size>", " "])))
    applicant = "".join(parts)
    app_id = draw(
        st.sampled_from(
            [
                "",
                "<lg:applicationId>LN-1</lg:applicationId>",
                "<lg:applicationId></lg:applicationId>",
                "<lg:applicationId> </lg:applicationId>",
                f"<lg:applicationId>{'x' * 201}</lg:applicationId>",
                "<lg:applicationId>a&amp;é&#13;</lg:applicationId>",
                '<lg:applicationId xsi:nil="true"/>',
                "<applicationId>LN-1</applicationId>",
            ]
        )
    )
    order = draw(st.integers(0, 20 * rare))
    wrapper_attrs = ' xsi:type="lg:x"' if order == 1 else ""
    applicant_el = f"<lg:applicant>{applicant}</lg:applicant>"
    if order == 2:
        applicant_el = f"<applicant>{applicant}</applicant>"
    if order == 3:
        applicant_el += "<lg:applicant/>"
    if order == 4:
        applicant_el = ""
    inner = app_id + applicant_el if order != 5 else applicant_el + app_id
    if order == 6:
        inner += "<lg:extra>1</lg:extra>"
    if order == 7:
        inner = " text " + inner
    header = draw(
        st.sampled_from(
            [
                "",
                "<lg:IdempotencyKey>k-1</lg:IdempotencyKey>",
                "<lg:IdempotencyKey>k-1</lg:IdempotencyKey><lg:IdempotencyKey>k-2</lg:IdempotencyKey>",
                "<lg:IdempotencyKey><lg:x/></lg:IdempotencyKey>",
                '<lg:IdempotencyKey s:mustUnderstand="1">k-1</lg:IdempotencyKey>',
                "<lg:IdempotencyKey></lg:IdempotencyKey>",
                "<lg:Other>1</lg:Other>",
                "<wsa:MessageID>urn:uuid:1</wsa:MessageID>",
                "<wsa:MessageID>m</wsa:MessageID><lg:IdempotencyKey>k</lg:IdempotencyKey>",
            ]
        )
    )
    version = draw(st.sampled_from(["1.1", "1.2"]))
    return wrap(
        f"<lg:ScoreApplication{wrapper_attrs}>{inner}</lg:ScoreApplication>", header, version
    )


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_direct_reader_answers_what_zeep_answers(
    bindings: tuple[SoapBinding, SoapBinding, Any], data: st.DataObject
) -> None:
    fast, slow, schema = bindings
    body = data.draw(bodies(schema))
    env = envelope(parse(body))  # every drawn body is a well-formed envelope
    assert fast.reader is not None
    event("read directly" if fast.reader.read(env.payload, env.header) else "read by zeep")
    assert answer(fast, body) == answer(slow, body)


def test_plain_bodies_are_read_directly(bindings: tuple[SoapBinding, SoapBinding, Any]) -> None:
    fast, slow, schema = bindings
    row = ROWS[1]
    fields = "".join(f"<lg:{k}>{escape(str(v))}</lg:{k}>" for k, v in reversed(row.items()))
    body = wrap(
        f"<lg:ScoreApplication><lg:applicationId>LN-1</lg:applicationId>"
        f"<lg:applicant>\n  {fields}\n</lg:applicant></lg:ScoreApplication>",
        "<lg:IdempotencyKey>k-1</lg:IdempotencyKey>",
    )
    env = envelope(parse(body))
    assert fast.reader is not None
    read = fast.reader.read(env.payload, env.header)
    assert read is not None and read[0] == "LN-1"
    assert list(read[1]) == [n for n in schema["properties"] if n in row]  # declared order
    assert answer(fast, body) == answer(slow, body) == (list(read[1].items()), "LN-1", "k-1")


@pytest.mark.parametrize(
    "inner",
    [
        "<lg:applicant><lg:duration_in_month>1_000</lg:duration_in_month></lg:applicant>",
        '<lg:applicant><lg:purpose xsi:nil="true"/></lg:applicant>',
        "<lg:applicant><lg:shoe_size>9</lg:shoe_size></lg:applicant>",
        "<lg:applicant/><lg:applicationId>x</lg:applicationId>",
    ],
)
def test_anything_else_is_left_to_zeep(
    bindings: tuple[SoapBinding, SoapBinding, Any], inner: str
) -> None:
    fast, slow, _ = bindings
    body = wrap(f"<lg:ScoreApplication>{inner}</lg:ScoreApplication>")
    env = envelope(parse(body))
    assert fast.reader is not None and fast.reader.read(env.payload, env.header) is None
    assert answer(fast, body) == answer(slow, body)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_zeep_client_envelopes_read_directly(
    bindings: tuple[SoapBinding, SoapBinding, Any], tmp_path_factory: pytest.TempPathFactory,
    data: st.DataObject,
) -> None:  # fmt: skip
    fast, slow, _ = bindings
    path = Path(tmp_path_factory.getbasetemp()) / "decode.wsdl"
    if not path.exists():
        path.write_text(fast.wsdl_text)
    client = zeep.Client(str(path))
    row = data.draw(st.sampled_from(ROWS))
    service = client.bind("CreditRiskService", data.draw(st.sampled_from(["Soap11", "Soap12"])))
    node = client.create_message(service, "ScoreApplication", applicationId="LN-9", applicant=row)
    body = etree.tostring(node)
    env = envelope(parse(body))
    assert fast.reader is not None and fast.reader.read(env.payload, env.header) is not None
    assert answer(fast, body) == answer(slow, body)
