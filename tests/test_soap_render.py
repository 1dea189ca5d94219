"""The response renderer (adapters/soap/render.py) against zeep's own serializer.

For arbitrary decision documents of every shape (decided, referred, declined, rejected with field
errors, errors), over SOAP 1.1 and 1.2 and both operations, the renderer must write the bytes
zeep writes, read back by zeep's deserialiser of the WSDL's output message to the same value, and
valid against the WSDL's schema. Where zeep could not answer at all (text XML 1.0 cannot carry,
non-finite doubles written as Python spells them), the renderer's answer is checked on its own.
"""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from zeep.helpers import serialize_object

from adapters.soap.adapter import SoapBinding, decision_value
from adapters.soap.render import Renderer, RenderError, Unsupported, escape_text
from adapters.soap.wsdl import XSD
from adapters.soap.xml import SOAP11_ENV, SOAP12_ENV, envelope, parse
from plugins.validators.schema import SchemaValidator

VERSIONS = ("1.1", "1.2")
OPERATIONS = ("ScoreApplication", "GetDecision")


@pytest.fixture(scope="module")
def binding(tmp_path_factory: pytest.TempPathFactory) -> SoapBinding:
    from gateway.components import Services
    from gateway.config import DEFAULT_CONFIG_FILE

    services = Services(DEFAULT_CONFIG_FILE.parent, tmp_path_factory.mktemp("i"), None)  # type: ignore[arg-type]
    validator = SchemaValidator({"schema": "schemas/credit-application.yaml"}, services)
    return SoapBinding.build("credit-risk", validator.input_schema())


@pytest.fixture(scope="module")
def schema(binding: SoapBinding) -> etree.XMLSchema:
    """The XSD inside the WSDL, on its own."""
    wsdl = etree.fromstring(binding.wsdl_text.encode())
    found = wsdl.find(f".//{{{XSD}}}schema")
    assert found is not None
    # QName values (type="tns:Decision") need the WSDL's prefixes in scope.
    alone = etree.Element(found.tag, dict(found.attrib), nsmap=wsdl.nsmap)
    alone.extend(copy.deepcopy(child) for child in found)
    return etree.XMLSchema(alone)


def is_xml_char(char: str) -> bool:
    """XML 1.0's Char production (written out here, apart from the renderer's regex)."""
    cp = ord(char)
    return (
        cp in (0x9, 0xA, 0xD)
        or 0x20 <= cp <= 0xD7FF
        or 0xE000 <= cp <= 0xFFFD
        or 0x10000 <= cp <= 0x10FFFF
    )


#: Text zeep can write: any Unicode but controls and surrogates, with XML's own specials.
xml_text = st.text(
    st.characters(
        codec="utf-8",
        exclude_categories=["Cs", "Cc"],
        include_characters="\t\n\r&<>\"']]>",
    ),
    max_size=30,
)
names = xml_text.filter(bool)
finite = st.floats(allow_nan=False, allow_infinity=False)
times = st.datetimes(
    min_value=datetime(1000, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]),
)


@st.composite
def documents(draw: st.DrawFn, text: st.SearchStrategy[str] = xml_text) -> dict[str, Any]:
    """A decision document (gateway.record's shape, caller view) of any status."""
    status = draw(st.sampled_from(["decided", "rejected", "error"]))
    received = draw(times)
    doc: dict[str, Any] = {
        "decision_id": draw(names),
        "request_id": "r",
        "pipeline": "credit-risk",
        "adapter": "soap",
        "application_id": draw(st.none() | text),
        "received_at": received.isoformat(),
        "decided_at": (received + draw(st.timedeltas(timedelta(0), timedelta(1)))).isoformat(),
        "status": status,
        "outcome": status,
        "probability_of_default": None,
        "model": None,
        "policy": None,
        "reason_codes": [],
        "explanation": None,
        "imputations": [],
        "referral_notes": [],
        "errors": [],
    }
    if status == "decided":
        doc["outcome"] = draw(st.sampled_from(["approve", "refer", "decline"]))
        doc["probability_of_default"] = draw(st.floats(0, 1))
        doc["model"] = {
            "name": draw(text),
            "version": draw(st.integers(-(2**31), 2**31 - 1)),
            "sha256": draw(text),
            "kind": "sklearn",
        }
        doc["policy"] = draw(st.none() | st.fixed_dictionaries({"version": text}))
        doc["reason_codes"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"code": text, "field": text, "text": text, "contribution": finite}
                ),
                max_size=4,
            )
        )
        doc["explanation"] = draw(
            st.none()
            | st.fixed_dictionaries(
                {
                    "method": text,
                    "base_value": finite,
                    "output": finite,
                    "contributions": st.dictionaries(
                        text, finite | st.integers(-5, 5), max_size=25
                    ),
                    "imputed": st.just([]),
                }
            )
        )
        doc["imputations"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "field": text,
                        "value": st.none() | st.integers() | finite | text,
                        "strategy": text,
                    }
                ),
                max_size=3,
            )
        )
        doc["referral_notes"] = draw(st.lists(text, max_size=3))
    else:
        doc["errors"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "pointer": st.builds(lambda n: f"/applicant/{n}", text),
                        "code": text,
                        "detail": text,
                    }
                ),
                min_size=1 if status == "rejected" else 0,
                max_size=4,
            )
        )
    return doc


def read_back(binding: SoapBinding, version: str, operation: str, payload: bytes) -> Any:
    """What zeep's deserialiser of the output message reads from ``payload``."""
    root = envelope(parse(payload)).root
    return serialize_object(binding.operations[(version, operation)].output.deserialize(root), dict)


def body_element(payload: bytes) -> etree._Element:
    return envelope(parse(payload)).payload


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=documents(),
    version=st.sampled_from(VERSIONS),
    operation=st.sampled_from(OPERATIONS),
    replayed=st.booleans(),
)
def test_renderer_writes_what_zeep_writes(
    binding: SoapBinding,
    schema: etree.XMLSchema,
    doc: dict[str, Any],
    version: str,
    operation: str,
    replayed: bool,
) -> None:
    fast = binding.response(version, operation, doc, replayed)
    slow = binding.zeep_response(version, operation, decision_value(doc, replayed))
    assert read_back(binding, version, operation, fast) == read_back(
        binding, version, operation, slow
    )
    assert fast == slow
    assert schema.validate(body_element(fast)), schema.error_log


def test_every_operation_has_a_renderer(binding: SoapBinding) -> None:
    assert set(binding.renderers) == {(v, op) for v in VERSIONS for op in OPERATIONS}


#: Text with at least one character XML 1.0 cannot carry (controls, lone surrogates, U+FFFF).
unwritable = st.builds(
    lambda a, bad, b: a + bad + b,
    st.text(max_size=8),
    st.sampled_from(
        ["\x00", "\x01", "\x08", "\x0b", "\x1f", "\ud800", "\udfff", "\ufffe", "\uffff"]
    ),
    st.text(max_size=8),
)


@settings(max_examples=60, deadline=None)
@given(text=unwritable, version=st.sampled_from(VERSIONS))
def test_text_xml_cannot_carry_is_replaced_where_zeep_failed(
    binding: SoapBinding, schema: etree.XMLSchema, text: str, version: str
) -> None:
    doc = {
        "decision_id": "01D",
        "application_id": text,
        "pipeline": "credit-risk",
        "status": "rejected",
        "outcome": "rejected",
        "reason_codes": [],
        "errors": [{"pointer": "/applicant/purpose", "code": "enum", "detail": text}],
        "received_at": "2026-01-01T00:00:00+00:00",
        "decided_at": "2026-01-01T00:00:01+00:00",
    }
    with pytest.raises(ValueError):  # lxml refuses the string (UnicodeEncodeError included)
        binding.zeep_response(version, "GetDecision", decision_value(doc))
    payload = binding.response(version, "GetDecision", doc)
    assert schema.validate(body_element(payload)), schema.error_log
    value = read_back(binding, version, "GetDecision", payload)
    kept = "".join(c if is_xml_char(c) else "\ufffd" for c in text)
    assert value["applicationId"] == kept
    assert value["errors"]["error"][0]["detail"] == kept
    # what zeep writes once the text is made writable is what the renderer wrote
    clean = {**doc, "application_id": kept, "errors": [{**doc["errors"][0], "detail": kept}]}
    assert payload == binding.zeep_response(version, "GetDecision", decision_value(clean))


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_doubles_are_written_as_xsd_spells_them(
    binding: SoapBinding, schema: etree.XMLSchema, value: float
) -> None:
    doc = {
        "decision_id": "01D",
        "pipeline": "credit-risk",
        "status": "decided",
        "outcome": "refer",
        "probability_of_default": value,
        "received_at": "2026-01-01T00:00:00+00:00",
        "decided_at": "2026-01-01T00:00:01+00:00",
    }
    payload = binding.response("1.1", "ScoreApplication", doc)
    assert schema.validate(body_element(payload)), schema.error_log
    back = read_back(binding, "1.1", "ScoreApplication", payload)["probabilityOfDefault"]
    assert repr(back) == repr(value)


def test_a_missing_required_value_is_refused_as_zeep_refuses_it(binding: SoapBinding) -> None:
    doc = {
        "decision_id": "01D",
        "pipeline": None,
        "status": "decided",
        "outcome": "approve",
        "received_at": "2026-01-01T00:00:00+00:00",
        "decided_at": "2026-01-01T00:00:01+00:00",
    }
    with pytest.raises(RenderError, match="pipeline"):
        binding.response("1.2", "ScoreApplication", doc)
    with pytest.raises(Exception, match="pipeline"):
        binding.zeep_response("1.2", "ScoreApplication", decision_value(doc))


def test_types_the_renderer_does_not_write_are_left_to_zeep(binding: SoapBinding) -> None:
    # The request element's Applicant is an xsd:all: no plan, and so no guess.
    request_element = binding.operations[("1.1", "ScoreApplication")].input.body
    with pytest.raises(Unsupported, match="xsd:sequence"):
        Renderer(request_element, binding.tns, SOAP11_ENV)
    output = binding.operations[("1.2", "GetDecision")].output.body
    with pytest.raises(Unsupported, match="not in"):
        Renderer(output, "urn:another", SOAP12_ENV)


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("plain", "plain"),
        ("a<b & c>d", "a&lt;b &amp; c&gt;d"),
        ("]]>", "]]&gt;"),
        ("line\r\nend\ttab", "line&#13;\nend\ttab"),
        ("nul\x00 bell\x07 \ud83d", "nul\ufffd bell\ufffd \ufffd"),
        ("quote \" and '", "quote \" and '"),
        ("émoji 😀 \U0010ffff", "émoji 😀 \U0010ffff"),
    ],
)
def test_escape_text(text: str, written: str) -> None:
    assert escape_text(text) == written
    if is_xml_char(text[0]):  # lxml reads it back (controls aside) as the same text
        parsed = etree.fromstring(f"<a>{written}</a>".encode())
        assert parsed.text == "".join(c if is_xml_char(c) else "\ufffd" for c in text)
