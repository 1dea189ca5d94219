"""The WSDL of a pipeline: document/literal wrapped, with SOAP 1.1 and 1.2 bindings.

Generated at start from the pipeline's input schema (the first validator's JSON Schema) and
the shape of the decision document, so the types a caller imports are the ones the gateway
enforces. Two operations: ``ScoreApplication`` (decide one application) and ``GetDecision``
(read a logged decision by id). Optional header elements: ``IdempotencyKey`` (or WS-Addressing
``MessageID``); WS-Security's ``Security`` header is accepted without being declared, as
WS-SecurityPolicy-less stacks expect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree

XSD = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
SOAP11_BINDING = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP12_BINDING = "http://schemas.xmlsoap.org/wsdl/soap12/"
HTTP_TRANSPORT = "http://schemas.xmlsoap.org/soap/http"
#: Placeholder for the endpoint address, replaced by the URL the WSDL was fetched from.
LOCATION = "http://loangate.invalid/soap"

OPERATIONS = ("ScoreApplication", "GetDecision")
#: The scope each operation needs (the same as the REST routes).
OPERATION_SCOPES = {"ScoreApplication": "decisions:create", "GetDecision": "decisions:read"}
OUTCOMES = ("approve", "refer", "decline", "rejected", "error")


def namespace(pipeline: str) -> str:
    """The target namespace of ``pipeline``'s WSDL and types."""
    return f"urn:loangate:soap:{pipeline}"


def soap_action(pipeline: str, operation: str) -> str:
    """The SOAPAction (1.1) / ``action`` parameter (1.2) of ``operation``."""
    return f"{namespace(pipeline)}/{operation}"


def service_name(pipeline: str) -> str:
    """``credit-risk`` -> ``CreditRiskService``."""
    return "".join(part.capitalize() for part in pipeline.split("-")) + "Service"


@dataclass(frozen=True)
class FieldType:
    """One applicant field as declared in the XSD."""

    name: str
    xsd_type: str  # int | double | string
    required: bool


def applicant_fields(input_schema: Mapping[str, Any]) -> list[FieldType]:
    """The applicant fields of a JSON Schema from :meth:`Pipeline.input_schema`."""
    required = set(input_schema.get("required", ()))
    out = []
    for name, prop in input_schema["properties"].items():
        out.append(FieldType(name, _xsd_base(_non_null(prop)), name in required))
    return out


def _non_null(prop: Mapping[str, Any]) -> Mapping[str, Any]:
    for option in prop.get("anyOf", ()):
        if option.get("type") != "null":
            return {**option, **{k: v for k, v in prop.items() if k != "anyOf"}}
    return prop


def _xsd_base(prop: Mapping[str, Any]) -> str:
    kind = prop.get("type")
    return {"integer": "int", "number": "double"}.get(str(kind), "string")


class _Builder:
    """Small helpers over lxml's element factory for the WSDL tree."""

    def __init__(self, tns: str) -> None:
        self.tns = tns
        self.nsmap = {
            "wsdl": WSDL,
            "xsd": XSD,
            "soap": SOAP11_BINDING,
            "soap12": SOAP12_BINDING,
            "tns": tns,
        }

    @staticmethod
    def sub(parent: etree._Element, ns: str, tag: str, **attrs: str) -> etree._Element:
        return etree.SubElement(parent, f"{{{ns}}}{tag}", attrs)

    def element(
        self,
        seq: etree._Element,
        name: str,
        type_: str,
        *,
        optional: bool = False,
        many: bool = False,
        doc: str | None = None,
    ) -> etree._Element:
        attrs = {"name": name}
        attrs["type"] = type_
        if optional:
            attrs.update(minOccurs="0")
        if many:
            attrs.update(minOccurs="0", maxOccurs="unbounded")
        el = self.sub(seq, XSD, "element", **attrs)
        if doc:
            ann = self.sub(el, XSD, "annotation")
            self.sub(ann, XSD, "documentation").text = doc
        return el

    def complex(self, schema: etree._Element, name: str) -> etree._Element:
        """A named complexType with a sequence; returns the sequence."""
        ct = self.sub(schema, XSD, "complexType", name=name)
        return self.sub(ct, XSD, "sequence")

    def wrapper(self, schema: etree._Element, name: str) -> etree._Element:
        """A global element with an anonymous complexType; returns its sequence."""
        el = self.sub(schema, XSD, "element", name=name)
        ct = self.sub(el, XSD, "complexType")
        return self.sub(ct, XSD, "sequence")


def _applicant_type(b: _Builder, schema: etree._Element, input_schema: Mapping[str, Any]) -> None:
    ct = b.sub(schema, XSD, "complexType", name="Applicant")
    b.sub(ct, XSD, "annotation").append(
        etree.fromstring(
            f'<xsd:documentation xmlns:xsd="{XSD}">Fields in any order; those that may be '
            "left out are minOccurs=0 (imputed or kept empty as the pipeline declares).</"
            "xsd:documentation>"
        )
    )
    # xsd:all: a hand-written envelope need not follow a declared order.
    group = b.sub(ct, XSD, "all")
    required = set(input_schema.get("required", ()))
    for name, raw in input_schema["properties"].items():
        prop = _non_null(raw)
        attrs = {"name": name}
        if name not in required:
            attrs.update(minOccurs="0", nillable="true")
        el = b.sub(group, XSD, "element", **attrs)
        notes = []
        missing = raw.get("x-missing")
        if isinstance(missing, Mapping):
            notes.append(f"imputed with {missing['impute']!r} when left out")
        elif missing == "allow":
            notes.append("may be left out")
        if raw.get("x-class") and raw["x-class"] != "ordinary":
            notes.append(f"data class: {raw['x-class']}")
        if notes:
            ann = b.sub(el, XSD, "annotation")
            b.sub(ann, XSD, "documentation").text = "; ".join(notes)
        simple = b.sub(el, XSD, "simpleType")
        restriction = b.sub(simple, XSD, "restriction", base=f"xsd:{_xsd_base(prop)}")
        for value in prop.get("enum", ()):
            b.sub(restriction, XSD, "enumeration", value=str(value))
        for key, facet in (("minimum", "minInclusive"), ("maximum", "maxInclusive")):
            if key in prop:
                bound = prop[key]
                text = str(int(bound)) if _xsd_base(prop) == "int" else repr(float(bound))
                b.sub(restriction, XSD, facet, value=text)


def _decision_types(b: _Builder, schema: etree._Element) -> None:
    outcome = b.sub(schema, XSD, "simpleType", name="Outcome")
    restriction = b.sub(outcome, XSD, "restriction", base="xsd:string")
    for value in OUTCOMES:
        b.sub(restriction, XSD, "enumeration", value=value)

    seq = b.complex(schema, "Model")
    b.element(seq, "name", "xsd:string")
    b.element(seq, "version", "xsd:int")
    b.element(seq, "sha256", "xsd:string")

    seq = b.complex(schema, "ReasonCode")
    b.element(seq, "code", "xsd:string")
    b.element(seq, "field", "xsd:string")
    b.element(seq, "text", "xsd:string")
    b.element(seq, "contribution", "xsd:double", doc="log-odds added by the field")

    seq = b.complex(schema, "Contribution")
    b.element(seq, "field", "xsd:string")
    b.element(seq, "value", "xsd:double")

    seq = b.complex(schema, "Explanation")
    b.element(seq, "method", "xsd:string")
    b.element(seq, "baseValue", "xsd:double")
    b.element(seq, "output", "xsd:double", doc="baseValue + sum(contributions): the log-odds")
    _list(b, seq, "contributions", "contribution", "tns:Contribution")

    seq = b.complex(schema, "Imputation")
    b.element(seq, "field", "xsd:string")
    b.element(seq, "value", "xsd:string")
    b.element(seq, "strategy", "xsd:string")

    seq = b.complex(schema, "FieldError")
    b.element(seq, "field", "xsd:string", doc="the applicant field (or element) at fault")
    b.element(seq, "path", "xsd:string", doc="its path in the SOAP body")
    b.element(seq, "code", "xsd:string", doc="required | type | minimum | maximum | enum | ...")
    b.element(seq, "detail", "xsd:string")

    seq = b.complex(schema, "Decision")
    b.element(seq, "decisionId", "xsd:string")
    b.element(seq, "applicationId", "xsd:string", optional=True)
    b.element(seq, "pipeline", "xsd:string")
    b.element(seq, "status", "xsd:string", doc="decided | rejected | error")
    b.element(seq, "outcome", "tns:Outcome")
    b.element(seq, "probabilityOfDefault", "xsd:double", optional=True)
    b.element(seq, "model", "tns:Model", optional=True)
    b.element(seq, "policyVersion", "xsd:string", optional=True)
    _list(b, seq, "reasonCodes", "reasonCode", "tns:ReasonCode")
    b.element(seq, "explanation", "tns:Explanation", optional=True)
    _list(b, seq, "imputations", "imputation", "tns:Imputation")
    _list(b, seq, "referralNotes", "note", "xsd:string")
    _list(b, seq, "errors", "error", "tns:FieldError")
    b.element(seq, "receivedAt", "xsd:dateTime")
    b.element(seq, "decidedAt", "xsd:dateTime")
    b.element(seq, "replayed", "xsd:boolean", doc="true when an idempotent retry was answered")

    seq = b.complex(schema, "FaultDetail")
    b.element(seq, "code", "xsd:string", doc="stable reason, e.g. validation-error")
    b.element(seq, "status", "xsd:int", doc="the HTTP status the REST API gives the same error")
    b.element(seq, "retryable", "xsd:boolean")
    b.element(seq, "retryAfterSeconds", "xsd:int", optional=True)
    b.element(seq, "requestId", "xsd:string", optional=True)
    b.element(seq, "decisionId", "xsd:string", optional=True, doc="the logged rejection")
    _list(b, seq, "errors", "error", "tns:FieldError")


def _list(b: _Builder, seq: etree._Element, outer: str, inner: str, type_: str) -> None:
    el = b.sub(seq, XSD, "element", name=outer, minOccurs="0")
    inner_seq = b.sub(b.sub(el, XSD, "complexType"), XSD, "sequence")
    b.element(inner_seq, inner, type_, many=True)


def generate(pipeline: str, input_schema: Mapping[str, Any], description: str = "") -> str:
    """The WSDL text of ``pipeline`` (endpoint address :data:`LOCATION`, replaced when served)."""
    tns = namespace(pipeline)
    b = _Builder(tns)
    defs = etree.Element(
        f"{{{WSDL}}}definitions", nsmap=b.nsmap, name=service_name(pipeline), targetNamespace=tns
    )
    if description:
        b.sub(defs, WSDL, "documentation").text = description
    types = b.sub(defs, WSDL, "types")
    schema = b.sub(types, XSD, "schema", targetNamespace=tns, elementFormDefault="qualified")
    _applicant_type(b, schema, input_schema)
    _decision_types(b, schema)

    seq = b.wrapper(schema, "ScoreApplication")
    b.element(seq, "applicationId", "xsd:string", optional=True, doc="the caller's own id")
    b.element(seq, "applicant", "tns:Applicant")
    b.element(b.wrapper(schema, "ScoreApplicationResponse"), "decision", "tns:Decision")
    b.element(b.wrapper(schema, "GetDecision"), "decisionId", "xsd:string")
    b.element(b.wrapper(schema, "GetDecisionResponse"), "decision", "tns:Decision")
    b.sub(schema, XSD, "element", name="fault", type="tns:FaultDetail")
    el = b.sub(schema, XSD, "element", name="IdempotencyKey")
    ann = b.sub(el, XSD, "annotation")
    b.sub(
        ann, XSD, "documentation"
    ).text = "A retry with the same key returns the first decision, logged once."
    restriction = b.sub(b.sub(el, XSD, "simpleType"), XSD, "restriction", base="xsd:string")
    b.sub(restriction, XSD, "minLength", value="1")
    b.sub(restriction, XSD, "maxLength", value="200")

    messages = {
        "ScoreApplicationInput": "ScoreApplication",
        "ScoreApplicationOutput": "ScoreApplicationResponse",
        "GetDecisionInput": "GetDecision",
        "GetDecisionOutput": "GetDecisionResponse",
        "Fault": "fault",
    }
    for message, element in messages.items():
        msg = b.sub(defs, WSDL, "message", name=message)
        b.sub(msg, WSDL, "part", name="parameters", element=f"tns:{element}")
    msg = b.sub(defs, WSDL, "message", name="IdempotencyHeader")
    b.sub(msg, WSDL, "part", name="IdempotencyKey", element="tns:IdempotencyKey")

    port_type_name = service_name(pipeline).removesuffix("Service") + "PortType"
    port_type = b.sub(defs, WSDL, "portType", name=port_type_name)
    for op in OPERATIONS:
        operation = b.sub(port_type, WSDL, "operation", name=op)
        b.sub(operation, WSDL, "input", message=f"tns:{op}Input")
        b.sub(operation, WSDL, "output", message=f"tns:{op}Output")
        b.sub(operation, WSDL, "fault", name="fault", message="tns:Fault")

    service = b.sub(defs, WSDL, "service", name=service_name(pipeline))
    for ns, suffix in ((SOAP11_BINDING, "Soap11"), (SOAP12_BINDING, "Soap12")):
        binding_name = f"{port_type_name.removesuffix('PortType')}{suffix}Binding"
        binding = b.sub(defs, WSDL, "binding", name=binding_name, type=f"tns:{port_type_name}")
        b.sub(binding, ns, "binding", style="document", transport=HTTP_TRANSPORT)
        for op in OPERATIONS:
            operation = b.sub(binding, WSDL, "operation", name=op)
            b.sub(
                operation, ns, "operation", soapAction=soap_action(pipeline, op), style="document"
            )
            inp = b.sub(operation, WSDL, "input")
            b.sub(inp, ns, "body", use="literal")
            if op == "ScoreApplication":
                b.sub(inp, ns, "header", message="tns:IdempotencyHeader", part="IdempotencyKey",
                      use="literal")  # fmt: skip
            b.sub(b.sub(operation, WSDL, "output"), ns, "body", use="literal")
            fault = b.sub(operation, WSDL, "fault", name="fault")
            b.sub(fault, ns, "fault", name="fault", use="literal")
        port = b.sub(service, WSDL, "port", name=suffix, binding=f"tns:{binding_name}")
        b.sub(port, ns, "address", location=LOCATION)
    # The service element comes last, as WSDL 1.1 orders definitions.
    defs.remove(service)
    defs.append(service)
    return etree.tostring(defs, xml_declaration=True, encoding="UTF-8", pretty_print=True).decode()
