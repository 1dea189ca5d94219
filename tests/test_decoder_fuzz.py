"""Bounded fuzzing of the inbound decoders: bytes in, a valid Inbound or a client error out.

Every decoder a caller's bytes reach is driven with arbitrary bytes and with structured
mutations of a valid request (truncation, byte flips, deep nesting, huge numbers, wrong types,
unknown members, DTD and entity payloads). Each must either return a well-formed
:class:`~gateway.components.Inbound` or raise the gateway's :class:`~gateway.errors.Problem`
with a 4xx status (a SOAP Client fault on the SOAP paths) — never another exception, never a
hang (:func:`bounded` turns a call that does not return within a generous time into a failure).

Decoders covered, beside the example-based tests of tests/test_soap.py, tests/test_mappings.py
and tests/test_mapped_xml.py: the REST JSON adapter; the SOAP adapter (parse, envelope,
operation, zeep deserialisation) and the endpoint's envelope reader; the mapping-driven XML
adapters (``mismo``, ``idoc``) and Salesforce outbound messages; the COBOL fixed-width record
decoder of batch files.

CI runs a fixed, derandomized profile (:data:`FUZZ`); a longer run:
``LOANGATE_FUZZ_EXAMPLES=5000 pytest tests/test_decoder_fuzz.py`` (docs/operations.md, API
conformance and decoder fuzzing).
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from adapters.idoc import IdocAdapter
from adapters.mismo import MismoAdapter
from adapters.rest import MAX_ID_LENGTH, RestAdapter
from adapters.salesforce.adapter import SalesforceAdapter
from adapters.salesforce.message import read as read_outbound
from adapters.soap.adapter import SoapAdapter, SoapBinding
from adapters.soap.endpoint import read_envelope
from adapters.soap.faults import SoapFault
from adapters.soap.wsdl import namespace
from adapters.soap.xml import SOAP11_ENV
from gateway.batch.copybook import decode_records, encode_record, parse_copybook
from gateway.components import Adapter, Inbound, Services
from gateway.errors import Problem
from plugins.validators.schema import SchemaValidator
from tests.helpers import applicant

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"
EXAMPLES = ROOT / "docs" / "examples"

#: The CI profile: small, derandomized (the same inputs every run), no example database.
FUZZ = settings(
    max_examples=int(os.environ.get("LOANGATE_FUZZ_EXAMPLES", "60")),
    derandomize=True,
    database=None,
    deadline=None,  # the hang guard below bounds time; a per-example deadline would flake
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: Seconds a single decode may take before it counts as a hang (decodes take milliseconds).
HANG_SECONDS = 10


@contextmanager
def bounded(seconds: int = HANG_SECONDS) -> Iterator[None]:
    """Fail the example if the body does not finish in ``seconds`` (SIGALRM, main thread)."""

    def expire(signum: int, frame: Any) -> None:
        raise AssertionError(f"the decoder did not return within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --- the decoders, built once from the shipped configuration ----------------------------------


def _services(tmp: Path) -> Services:
    return Services(CONFIG, tmp, None)  # type: ignore[arg-type]  # decoders load no model


@pytest.fixture(scope="module")
def decoders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    services = _services(tmp_path_factory.mktemp("fuzz"))
    validator = SchemaValidator({"schema": "schemas/credit-application.yaml"}, services)
    schema = validator.input_schema()
    soap = SoapAdapter({}, services)
    soap.binding = SoapBinding.build("credit-risk", schema)
    built: dict[str, Any] = {"rest": RestAdapter({}, services), "soap": soap}
    for cls, config in (
        (MismoAdapter, {}),
        (IdocAdapter, {}),
        (SalesforceAdapter, {"organizations": ["00D5g0000LoanGwEQI"]}),
    ):
        adapter = cls(config, services)
        adapter.check_input_schema(schema)
        built[cls.name] = adapter
    built["validator"] = validator
    return built


def check_inbound(inbound: Inbound) -> None:
    """What every decoder promises of what it returns."""
    assert isinstance(inbound, Inbound)
    assert all(isinstance(k, str) for k in inbound.fields)
    assert inbound.application_id is None or (
        isinstance(inbound.application_id, str) and len(inbound.application_id) > 0
    )
    assert inbound.application_id is None or len(inbound.application_id) <= MAX_ID_LENGTH
    assert inbound.idempotency_key is None or (
        isinstance(inbound.idempotency_key, str) and inbound.idempotency_key.isprintable()
    )


def note_event(name: str) -> None:
    """Count an outcome for ``--hypothesis-show-statistics`` (outside a fuzz test: nothing)."""
    with suppress(InvalidArgument):  # called from a plain test
        event(name)


def decodes_or_refuses(call: Callable[[], Inbound]) -> Inbound | Problem | SoapFault:
    """Run a decode: its Inbound (checked), or the client error it raised. Anything else —
    another exception, a server error, a hang — fails the test."""
    try:
        with bounded():
            inbound = call()
    except Problem as problem:
        assert problem.client_error, problem
        assert problem.errors or problem.detail, problem
        note_event(f"refused: {problem.status} {problem.slug}")
        return problem
    except SoapFault as fault:
        assert fault.client, fault
        note_event(f"refused: SOAP fault {fault.code}")
        return fault
    check_inbound(inbound)
    note_event("decoded")
    return inbound


def decode(adapter: Adapter, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return decodes_or_refuses(lambda: adapter.decode(body, headers or {}))


# --- valid requests, and the mutations made of them -------------------------------------------


def rest_body() -> bytes:
    import orjson

    return orjson.dumps({"application_id": "LN-1", "applicant": applicant(1)})


def soap_body(version: str = "1.1") -> bytes:
    from xml.sax.saxutils import escape

    tns = namespace("credit-risk")
    env = SOAP11_ENV if version == "1.1" else "http://www.w3.org/2003/05/soap-envelope"
    fields = "".join(f"<lg:{k}>{escape(str(v))}</lg:{k}>" for k, v in applicant(1).items())
    return (
        f'<s:Envelope xmlns:s="{env}" xmlns:lg="{tns}"><s:Header>'
        f"<lg:IdempotencyKey>k-1</lg:IdempotencyKey></s:Header><s:Body><lg:ScoreApplication>"
        f"<lg:applicationId>LN-1</lg:applicationId><lg:applicant>{fields}</lg:applicant>"
        f"</lg:ScoreApplication></s:Body></s:Envelope>"
    ).encode()


SAMPLES = {
    "rest": rest_body(),
    "soap": soap_body(),
    "mismo": (EXAMPLES / "mismo" / "loan-application.xml").read_bytes(),
    "idoc": (EXAMPLES / "idoc" / "ZLOANAPP01.xml").read_bytes(),
    "salesforce": (EXAMPLES / "salesforce" / "notifications.xml").read_bytes(),
}

#: Payloads spliced into documents: entities, DTDs, external references, XInclude, odd text.
XML_HOSTILE = [
    b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>',
    b'<!DOCTYPE r SYSTEM "file:///etc/passwd">',
    b'<!ENTITY x SYSTEM "http://127.0.0.1:1/x">',
    b"&x;",
    b"&#0;",
    b"&#x110000;",
    b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/passwd"/>',
    b"<![CDATA[<a>]]>",
    b"<?xml-stylesheet href='x'?>",
    b"\x00",
    b"\xff\xfe",
    b"]]>",
    b"<" * 40,
    b'<a xmlns="x" xmlns="y"/>',
    "<é/>".encode("utf-16"),
]
NUMBERS = [
    b"1e400",
    b"-1e400",
    b"18446744073709551616",
    b"99999999999999999999999999999999999999",
    b"9" * 400,  # past a float: math.isfinite overflowed on it in the validator
    b"1_000",  # Python's int() takes it, XSD does not
    b"NaN",
    b"Infinity",
    b"-0",
    b"1e-400",
    b"0x10",
    "\u0663".encode(),  # an Arabic-Indic digit: int() takes it, XSD does not
    b"",
    b"true",
    b"null",
    b"[]",
    b"{}",
]


XML_NAME = re.compile(rb"<([A-Za-z_][\w.:-]*)")
JSON_NAME = re.compile(rb'"([^"\\]+)":')


def _splice(data: st.DataObject, body: bytes, insert: bytes) -> bytes:
    at = data.draw(st.integers(0, len(body)), label="at")
    return body[:at] + insert + body[at:]


def mutated(data: st.DataObject, body: bytes, xml: bool) -> bytes:
    """``body`` with one structured mutation (or a few), drawn by ``data``."""
    kind = data.draw(
        st.sampled_from(
            ["truncate", "flip", "splice", "hostile", "number", "nest", "repeat", "swap"]
        ),
        label="mutation",
    )
    if kind == "truncate":
        return body[: data.draw(st.integers(0, len(body)), label="length")]
    if kind == "flip":
        out = bytearray(body)
        for _ in range(data.draw(st.integers(1, 8), label="flips")):
            i = data.draw(st.integers(0, len(out) - 1), label="byte")
            out[i] = data.draw(st.integers(0, 255), label="value")
        return bytes(out)
    if kind == "splice":
        return _splice(data, body, data.draw(st.binary(max_size=64), label="bytes"))
    if kind == "hostile":
        return _splice(data, body, data.draw(st.sampled_from(XML_HOSTILE), label="payload"))
    if kind == "number":
        return _replace_value(data, body, data.draw(st.sampled_from(NUMBERS), label="number"), xml)
    if kind == "nest":
        depth = data.draw(st.sampled_from([50, 300, 5000]), label="depth")
        if xml:
            nest = b"<n>" * depth + b"1" + b"</n>" * depth
        else:
            nest = b"[" * depth + b"1" + b"]" * depth
        return _replace_value(data, body, nest, xml)
    if kind == "repeat":
        return body + body[: data.draw(st.integers(1, len(body)), label="tail")]
    # swap: an element (every tag of it, so still well-formed) or a member renamed: an unknown
    # field, a duplicate of another, or a name in another namespace
    names = sorted(set((XML_NAME if xml else JSON_NAME).findall(body)))
    name = data.draw(st.sampled_from(names), label="name")
    other = data.draw(st.sampled_from([b"x", b"applicant", b"__proto__", b"\xc3\xa9", *names]))
    if xml:
        if b":" in name and b":" not in other:
            other = name.split(b":")[0] + b":" + other
        return body.replace(b"<" + name, b"<" + other).replace(b"</" + name, b"</" + other)
    return body.replace(b'"' + name + b'":', b'"' + other + b'":', 1)


def _replace_value(data: st.DataObject, body: bytes, value: bytes, xml: bool) -> bytes:
    """``body`` with one element's text (XML) or one member's value (JSON) replaced."""
    if xml:  # the text of a leaf element: after a ">", up to a closing tag
        leaves = [
            (i + 1, end)
            for i in range(len(body))
            if body[i : i + 1] == b">" and body[(end := body.find(b"<", i)) + 1 : end + 2] == b"/"
        ]
        at, end = data.draw(st.sampled_from(leaves), label="element")
        return body[:at] + value + body[end:]
    colons = [i + 1 for i in range(len(body)) if body[i : i + 1] == b":"]
    at = data.draw(st.sampled_from(colons), label="member")
    end = min((j for j in (body.find(b",", at), body.find(b"}", at)) if j >= 0), default=len(body))
    return body[:at] + value + body[end:]


# --- REST (JSON) ----------------------------------------------------------------------------


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@FUZZ
@given(body=st.binary(max_size=512))
def test_rest_decoder_on_arbitrary_bytes(decoders: dict[str, Any], body: bytes) -> None:
    decode(decoders["rest"], body)


@FUZZ
@given(data=st.data())
def test_rest_decoder_on_mutated_requests(decoders: dict[str, Any], data: st.DataObject) -> None:
    result = decode(decoders["rest"], mutated(data, SAMPLES["rest"], xml=False))
    if isinstance(result, Inbound):
        # what the decoder lets through, the validator answers: a decision or field errors
        validate(decoders["validator"], result)


@FUZZ
@given(
    shape=st.sampled_from(["applicant", "top", "body"]),
    changes=st.dictionaries(st.sampled_from([*applicant(1), "x", ""]), json_values, max_size=4),
    doc=json_values,
    key=st.none() | st.text(max_size=210),
)
def test_rest_decoder_and_validator_on_any_json(
    decoders: dict[str, Any], shape: str, changes: dict[str, Any], doc: Any, key: str | None
) -> None:
    """Wrong types, unknown members, huge numbers: in the applicant, at the top, as the body."""
    import json

    if shape == "applicant":
        sent: Any = {"application_id": "LN-1", "applicant": {**applicant(1), **changes}}
    elif shape == "top":
        sent = {"application_id": doc, "applicant": applicant(1), **changes}
    else:
        sent = doc
    headers = {} if key is None else {"Idempotency-Key": key}
    result = decode(decoders["rest"], json.dumps(sent).encode(), headers)
    if isinstance(result, Inbound):
        validate(decoders["validator"], result)


def validate(validator: SchemaValidator, inbound: Inbound) -> None:
    """The schema validator on a decoded application: features or field errors, nothing else."""
    from tests.helpers import context_for

    with bounded():
        ctx = validator.validate(context_for(dict(inbound.fields)))
    assert ctx.errors or set(ctx.features) == set(validator.fields)
    for error in ctx.errors:
        assert error.pointer.startswith("/applicant/"), error


# --- SOAP -------------------------------------------------------------------------------------


@FUZZ
@given(body=st.binary(max_size=512))
def test_soap_decoder_on_arbitrary_bytes(decoders: dict[str, Any], body: bytes) -> None:
    decode(decoders["soap"], body)
    decodes_or_refuses(lambda: _envelope_only(body))


def _envelope_only(body: bytes) -> Inbound:
    read_envelope(body)  # the endpoint's reader: a Client fault for anything not an envelope
    return Inbound(fields={})


@FUZZ
@given(data=st.data(), version=st.sampled_from(["1.1", "1.2"]))
def test_soap_decoder_on_mutated_envelopes(
    decoders: dict[str, Any], data: st.DataObject, version: str
) -> None:
    body = mutated(data, soap_body(version), xml=True)
    result = decode(decoders["soap"], body)
    if isinstance(result, Inbound):
        validate(decoders["validator"], result)


@pytest.mark.parametrize(
    ("text", "decoded", "valid"),
    [
        ("5951", True, True),
        (" 5951 ", True, True),
        ("9" * 400, True, False),  # an xsd:int lexically; past the field's maximum
        ("5_951", False, False),
        ("\u0665", False, False),
    ],
    ids=["plain", "spaces", "400-digits", "underscore", "arabic-indic"],
)
def test_soap_integers_are_xsd_integers_of_any_size(
    decoders: dict[str, Any], text: str, decoded: bool, valid: bool
) -> None:
    """The xsd:int lexical form only; a huge one is a field error, never an overflow."""
    from tests.helpers import context_for

    amount = f">{applicant(1)['credit_amount']}<".encode()
    assert amount in soap_body()
    result = decode(decoders["soap"], soap_body().replace(amount, f">{text}<".encode()))
    if not decoded:
        assert isinstance(result, Problem) and result.status == 422, result
        assert [e.pointer for e in result.errors] == ["/applicant/credit_amount"]
        return
    assert isinstance(result, Inbound), result
    ctx = decoders["validator"].validate(context_for(dict(result.fields)))
    assert [e.pointer for e in ctx.errors] == ([] if valid else ["/applicant/credit_amount"])


def test_huge_integers_are_field_errors_for_the_validator(decoders: dict[str, Any]) -> None:
    from tests.helpers import context_for

    validator = decoders["validator"]
    raw = {**applicant(1), "credit_amount": 10**400}
    single = validator.validate(context_for(raw))
    many = validator.validate_many([context_for(raw)])[0]
    assert single.errors == many.errors
    assert [(e.pointer, e.code) for e in single.errors] == [("/applicant/credit_amount", "maximum")]


def test_soap_sample_decodes(decoders: dict[str, Any]) -> None:
    """The valid request the mutations start from decodes (else they test nothing)."""
    for version in ("1.1", "1.2"):
        inbound = decode(decoders["soap"], soap_body(version))
        assert isinstance(inbound, Inbound), inbound
        assert inbound.fields["credit_amount"] == applicant(1)["credit_amount"]
        assert (inbound.application_id, inbound.idempotency_key) == ("LN-1", "k-1")


# --- mapping-driven XML: MISMO, IDoc, Salesforce ----------------------------------------------


@pytest.mark.parametrize("name", ["mismo", "idoc", "salesforce"])
def test_mapped_samples_decode(decoders: dict[str, Any], name: str) -> None:
    inbound = decode_mapped(decoders, name, SAMPLES[name])
    assert isinstance(inbound, Inbound) and inbound.fields, inbound


def decode_mapped(decoders: dict[str, Any], name: str, body: bytes) -> Any:
    """A mapped adapter's decode; for Salesforce the endpoint's path, whole message first."""
    adapter = decoders[name]
    if name != "salesforce":
        return decode(adapter, body)

    def message() -> Inbound:
        found = read_outbound(read_envelope(body))
        # each notification on its own, as the endpoint decides them; the first is returned
        inbounds = [decodes_or_refuses(partial(adapter.inbound, n)) for n in found.notifications]
        first = inbounds[0]
        if isinstance(first, Exception):
            raise first
        return first

    return decodes_or_refuses(message)


@FUZZ
@given(name=st.sampled_from(["mismo", "idoc", "salesforce"]), body=st.binary(max_size=256))
def test_mapped_decoders_on_arbitrary_bytes(
    decoders: dict[str, Any], name: str, body: bytes
) -> None:
    decode_mapped(decoders, name, body)


@FUZZ
@given(name=st.sampled_from(["mismo", "idoc", "salesforce"]), data=st.data())
def test_mapped_decoders_on_mutated_documents(
    decoders: dict[str, Any], name: str, data: st.DataObject
) -> None:
    result = decode_mapped(decoders, name, mutated(data, SAMPLES[name], xml=True))
    if isinstance(result, Inbound):
        validate(decoders["validator"], result)


@FUZZ
@given(key=st.text(max_size=210))
def test_mapped_decoders_check_the_idempotency_header(decoders: dict[str, Any], key: str) -> None:
    result = decode(decoders["idoc"], SAMPLES["idoc"], {"Idempotency-Key": key})
    assert isinstance(result, Inbound) == (0 < len(key) <= 200 and key.isprintable())


# --- COBOL fixed-width records (batch files) --------------------------------------------------

BOOK = parse_copybook((CONFIG / "copybooks" / "german-credit.cpy").read_text(encoding="utf-8"))


@FUZZ
@given(
    records=st.integers(0, 4).flatmap(
        lambda n: st.binary(min_size=n * BOOK.record_length, max_size=n * BOOK.record_length)
    ),
    encoding=st.sampled_from(["cp037", "ascii"]),
)
def test_fixed_width_records_decode_whatever_their_bytes(records: bytes, encoding: str) -> None:
    """Any whole records decode: each field a value that fits its PIC, or missing — and a
    field is missing for bad bytes only if it is named in ``bad_fields``."""
    with bounded():
        chunk = decode_records(BOOK, records, encoding)
    assert len(chunk.frame) == len(records) // BOOK.record_length  # zero records too
    for field in BOOK.fields:
        if field.name == "filler" or field.kind == "text":
            continue
        bound = Decimal(10**field.digits - 1).scaleb(-field.scale)
        for row, value in enumerate(chunk.frame[field.name]):
            if value is None:
                continue
            assert field.name not in chunk.bad_fields.get(row, ()), (row, field.name)
            assert isinstance(value, int if field.scale == 0 else float)
            assert (-bound if field.signed else 0) <= Decimal(str(value)) <= bound


@FUZZ
@given(data=st.data(), encoding=st.sampled_from(["cp037", "ascii"]))
def test_fixed_width_mutated_records_decode_or_are_refused_whole(
    data: st.DataObject, encoding: str
) -> None:
    """Valid records cut short, extended or with bytes flipped: decoded, or refused as a
    whole for not being whole records (the documented ValueError), nothing else."""
    row = {"duration_in_month": 24, "credit_amount": 1200, "age_in_years": 35, "job": "A173"}
    body = bytearray(encode_record(BOOK, row, encoding) * 2)
    cut = data.draw(st.integers(-5, 5), label="cut")
    body = body[:cut] if cut < 0 else body + bytes(cut)
    for _ in range(data.draw(st.integers(0, 8), label="flips")):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    try:
        with bounded():
            chunk = decode_records(BOOK, bytes(body), encoding)
    except ValueError as exc:
        assert "whole number" in str(exc) and len(body) % BOOK.record_length
    else:
        assert len(chunk.frame) * BOOK.record_length == len(body) == 2 * BOOK.record_length
