"""The SOAP adapter: a pipeline's WSDL, requests decoded and decisions encoded by its types.

Each pipeline that lists the ``soap`` adapter gets a :class:`SoapBinding` at start: the WSDL
generated from its input schema (:mod:`adapters.soap.wsdl`) loaded into a ``zeep.wsdl.Document``
whose transport refuses every load, so nothing is ever fetched, then or later. zeep is a client
library, but its WSDL and XSD objects read a request and build a response on the server side just
as well; per request, though, its object building costs ten times a direct reading (0.2 ms to
read an application, 0.7 ms to write a decision). So, on a tree :mod:`adapters.soap.xml` parsed,
a plain ``ScoreApplication`` body is read directly (:mod:`adapters.soap.decode`) and any other by
``operation.input.deserialize``; responses are written by a
:class:`~adapters.soap.render.Renderer` compiled at start from the same zeep types, with zeep's
``operation.output.serialize`` kept for an output type the renderer does not cover.
"""

from __future__ import annotations

import contextlib
import html
import io
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lxml import etree
from zeep import Settings
from zeep.helpers import serialize_object
from zeep.transports import Transport
from zeep.wsdl import Document

from adapters.rest import MAX_ID_LENGTH
from adapters.soap import wsdl
from adapters.soap.decode import PlainReader
from adapters.soap.faults import SoapFault, client_fault
from adapters.soap.render import Renderer, Unsupported
from adapters.soap.xml import SOAP11_ENV, SOAP12_ENV, Envelope, envelope, parse
from gateway.components import Adapter, Inbound
from gateway.errors import FieldError, bad_request, validation_failed
from gateway.idempotency import check_key

if TYPE_CHECKING:
    from gateway.pipeline import Pipeline

WSA_NAMESPACES = (
    "http://www.w3.org/2005/08/addressing",
    "http://schemas.xmlsoap.org/ws/2004/08/addressing",
)
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
#: The XSD lexical forms of the numeric types (whitespace collapsed). zeep converts with
#: Python's int() and float(), which also take "1_000", non-ASCII digits and "infinity".
_WS = "[ \t\r\n]*"  # XSD whitespace, collapsed (not Unicode spaces)
XSD_LEXICAL = {
    "int": re.compile(f"{_WS}[+-]?[0-9]+{_WS}"),
    "double": re.compile(
        f"{_WS}([+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+)?|-?INF|NaN){_WS}"
    ),
}
#: zeep logs a traceback for every value it cannot convert; the adapter reports those itself.
logging.getLogger("zeep.xsd.types.simple").setLevel(logging.CRITICAL)

ZEEP_SETTINGS = Settings(
    strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True, xml_huge_tree=False
)


class RefusingTransport(Transport):
    """A zeep transport that loads nothing: the WSDL is given as text, imports are refused."""

    def __init__(self) -> None:
        super().__init__(cache=None)

    def load(self, url: str) -> bytes:
        raise RuntimeError(f"refusing to load {url!r}: the WSDL must be self-contained")

    def get(self, address: str, params: Any, headers: Any) -> Any:
        raise RuntimeError("no outbound calls from the SOAP adapter")

    def post(self, address: str, message: Any, headers: Any) -> Any:
        raise RuntimeError("no outbound calls from the SOAP adapter")


@dataclass(frozen=True)
class SoapBinding:
    """One pipeline's SOAP endpoint: its WSDL and the zeep operations that read and write it."""

    pipeline: str
    tns: str
    wsdl_text: str
    fields: Mapping[str, str]  # applicant field -> xsd base type
    operations: Mapping[tuple[str, str], Any]  # (version, operation) -> zeep BindingOperation
    #: (version, operation) -> the response writer; an operation left out answers through zeep.
    renderers: Mapping[tuple[str, str], Renderer] = field(default_factory=dict)
    #: The direct reader of plain ScoreApplication bodies (None: zeep reads them all).
    reader: PlainReader | None = None

    @classmethod
    def build(
        cls, pipeline: str, input_schema: Mapping[str, Any], description: str = ""
    ) -> SoapBinding:
        """Generate the WSDL of ``pipeline`` and load it into zeep (once, at start)."""
        text = wsdl.generate(pipeline, input_schema, description)
        document = Document(io.BytesIO(text.encode()), RefusingTransport(), settings=ZEEP_SETTINGS)  # type: ignore[arg-type]  # zeep's hint is wrong: it takes an instance
        service = document.services[wsdl.service_name(pipeline)]
        operations = {}
        renderers = {}
        tns = wsdl.namespace(pipeline)
        for version, port, env_ns in (("1.1", "Soap11", SOAP11_ENV), ("1.2", "Soap12", SOAP12_ENV)):
            binding = service.ports[port].binding
            for op in wsdl.OPERATIONS:
                operations[(version, op)] = binding.get(op)
                # a type the renderer does not write (Unsupported): zeep answers the operation
                with contextlib.suppress(Unsupported):
                    renderers[(version, op)] = Renderer(binding.get(op).output.body, tns, env_ns)
        declared = wsdl.applicant_fields(input_schema)
        fields = {f.name: f.xsd_type for f in declared}
        reader = PlainReader(tns, fields, (f.name for f in declared if f.required), XSD_LEXICAL)
        return cls(pipeline, tns, text, fields, operations, renderers, reader)

    def wsdl_for(self, location: str) -> str:
        """The WSDL with its endpoint address set to ``location``."""
        return self.wsdl_text.replace(wsdl.LOCATION, html.escape(location, quote=True))

    # --- requests ----------------------------------------------------------------------

    def operation(self, env: Envelope, action: str | None) -> str:
        """The operation the body element names; a Client fault if unknown or the action
        (SOAPAction / ``action``) names another one."""
        qname = etree.QName(env.payload)
        name = qname.localname
        if qname.namespace != self.tns or name not in wsdl.OPERATIONS:
            raise client_fault(
                f"Unknown operation {{{qname.namespace or ''}}}{name}; this endpoint offers "
                f"{', '.join(wsdl.OPERATIONS)} in namespace {self.tns}.",
                code="unknown-operation",
            )
        if action and action != wsdl.soap_action(self.pipeline, name):
            raise client_fault(
                f"The action {action!r} does not match the body element {name} "
                f"(expected {wsdl.soap_action(self.pipeline, name)!r}).",
                code="action-mismatch",
            )
        return name

    def idempotency_key(self, env: Envelope) -> str | None:
        """The ``IdempotencyKey`` header element, else WS-Addressing ``MessageID``."""
        for ns, local in (
            (self.tns, "IdempotencyKey"),
            *((ns, "MessageID") for ns in WSA_NAMESPACES),
        ):
            for entry in env.header:
                if entry.tag == f"{{{ns}}}{local}":
                    return check_key((entry.text or "").strip(), f"/headers/{local}")
        return None

    def decode_application(self, env: Envelope) -> Inbound:
        """The application in a ``ScoreApplication`` body; a :class:`Problem` naming the fields
        at fault otherwise (the decision path logs it as a rejection)."""
        plain = self.reader.read(env.payload, env.header) if self.reader is not None else None
        if plain is not None:
            app_id, fields = plain
            if app_id is not None and len(app_id) > MAX_ID_LENGTH:  # never empty here
                raise validation_failed((_ID_LENGTH,))
            return Inbound(
                fields=fields, application_id=app_id, idempotency_key=self.idempotency_key(env)
            )
        operation = self.operations[(env.version, "ScoreApplication")]
        try:
            message = operation.input.deserialize(env.root)
        except Exception as exc:  # zeep raises several types; every one is the caller's input
            found = self._diagnose(env.payload)
            if found:
                raise validation_failed(found) from None
            raise bad_request(f"The ScoreApplication element is invalid: {exc}") from None
        body = message.body if hasattr(message, "body") else message
        applicant = body.applicant
        if applicant is None:
            raise validation_failed((FieldError("/applicant", "required", "is required"),))
        values: dict[str, Any] = serialize_object(applicant, dict)
        errors = self._type_errors(env.payload, values)
        app_id = body.applicationId
        if app_id is not None and not 0 < len(app_id) <= MAX_ID_LENGTH:
            errors.append(_ID_LENGTH)
        if errors:
            raise validation_failed(tuple(errors))
        fields = {k: v for k, v in values.items() if v is not None}
        return Inbound(
            fields=fields, application_id=app_id, idempotency_key=self.idempotency_key(env)
        )

    def _applicant_element(self, payload: etree._Element) -> etree._Element | None:
        return payload.find(f"{{{self.tns}}}applicant")

    def _type_errors(self, payload: etree._Element, values: Mapping[str, Any]) -> list[FieldError]:
        # zeep turns a value it cannot convert into None: find those fields by their elements.
        applicant = self._applicant_element(payload)
        errors = []
        for child in applicant if applicant is not None else ():
            if not isinstance(child.tag, str):
                continue
            name = etree.QName(child).localname
            nil = child.get(XSI_NIL) in ("true", "1")
            lexical = XSD_LEXICAL.get(self.fields.get(name, ""))
            if not nil and (
                values.get(name) is None
                or len(child)
                or (lexical is not None and not lexical.fullmatch(child.text or ""))
            ):
                kind = {"int": "an integer", "double": "a number"}.get(self.fields[name], "text")
                errors.append(FieldError(f"/applicant/{name}", "type", f"must be {kind}"))
        return errors

    def _diagnose(self, payload: etree._Element) -> tuple[FieldError, ...]:
        """Field errors for a body zeep refused: unknown, misplaced or repeated elements."""
        errors: list[FieldError] = []
        allowed = {"applicationId": "/application_id", "applicant": "/applicant"}
        seen: set[str] = set()
        for child in payload:
            if not isinstance(child.tag, str):
                continue
            q = etree.QName(child)
            pointer = allowed.get(q.localname, f"/{q.localname}")
            errors.extend(self._check_element(q, pointer, q.localname in allowed, seen))
        applicant = self._applicant_element(payload)
        seen = set()
        for child in applicant if applicant is not None else ():
            if isinstance(child.tag, str):
                q = etree.QName(child)
                pointer = f"/applicant/{q.localname}"
                errors.extend(self._check_element(q, pointer, q.localname in self.fields, seen))
        return tuple(errors)

    def _check_element(
        self, q: etree.QName, pointer: str, known: bool, seen: set[str]
    ) -> list[FieldError]:
        if not known:
            return [FieldError(pointer, "unknown", f"unknown element {q.localname!r}")]
        if q.namespace != self.tns:
            return [
                FieldError(
                    pointer, "namespace", f"element {q.localname!r} must be in namespace {self.tns}"
                )
            ]
        if q.localname in seen:
            return [FieldError(pointer, "duplicate", "given more than once")]
        seen.add(q.localname)
        return []

    def decision_id(self, env: Envelope) -> str:
        """The id a ``GetDecision`` body asks for."""
        operation = self.operations[(env.version, "GetDecision")]
        try:
            message = operation.input.deserialize(env.root)
        except Exception as exc:
            raise client_fault(f"The GetDecision element is invalid: {exc}") from None
        # zeep unwraps a one-member wrapper to the member's value.
        value = message if isinstance(message, str | None) else message.decisionId
        if not value or len(value) > 64:
            raise client_fault(
                "GetDecision needs a decisionId.",
                code="validation-error",
                status=422,
                errors=(FieldError("/decisionId", "required", "is required"),),
            )
        return str(value)

    # --- responses ---------------------------------------------------------------------

    def response(
        self, version: str, operation: str, document: Mapping[str, Any], replayed: bool = False
    ) -> bytes:
        """The response envelope of ``operation`` carrying the decision ``document``."""
        value = decision_value(document, replayed)
        renderer = self.renderers.get((version, operation))
        if renderer is None:
            return self.zeep_response(version, operation, value)
        return renderer.render({"decision": value})

    def zeep_response(self, version: str, operation: str, value: Mapping[str, Any]) -> bytes:
        """The response envelope as zeep writes it (``value``: :func:`decision_value`'s)."""
        message = self.operations[(version, operation)].output.serialize(decision=value)
        return etree.tostring(message.content, xml_declaration=True, encoding="UTF-8")


_ID_LENGTH = FieldError("/application_id", "type", f"must be 1 to {MAX_ID_LENGTH} characters")


def decision_value(doc: Mapping[str, Any], replayed: bool = False) -> dict[str, Any]:
    """The ``Decision`` XSD value of a decision document (:mod:`gateway.record`)."""
    model = doc.get("model")
    explanation = doc.get("explanation")
    policy = doc.get("policy")
    value: dict[str, Any] = {
        "decisionId": doc["decision_id"],
        "applicationId": doc.get("application_id"),
        "pipeline": doc["pipeline"],
        "status": doc["status"],
        "outcome": doc["outcome"],
        "probabilityOfDefault": doc.get("probability_of_default"),
        "model": {k: model[k] for k in ("name", "version", "sha256")} if model else None,
        "policyVersion": policy.get("version") if policy else None,
        "reasonCodes": {"reasonCode": [dict(r) for r in doc.get("reason_codes", ())]},
        "explanation": {
            "method": explanation["method"],
            "baseValue": explanation["base_value"],
            "output": explanation["output"],
            "contributions": {
                "contribution": [
                    {"field": k, "value": v} for k, v in explanation["contributions"].items()
                ]
            },
        }
        if explanation
        else None,
        "imputations": {
            "imputation": [
                {"field": i["field"], "value": str(i["value"]), "strategy": i["strategy"]}
                for i in doc.get("imputations", ())
            ]
        },
        "referralNotes": {"note": list(doc.get("referral_notes", ()))},
        "errors": {
            "error": [
                {
                    "field": e["pointer"].rsplit("/", 1)[-1],
                    "path": "ScoreApplication" + e["pointer"],
                    "code": e["code"],
                    "detail": e["detail"],
                }
                for e in doc.get("errors", ())
            ]
        },
        "receivedAt": datetime.fromisoformat(doc["received_at"]),
        "decidedAt": datetime.fromisoformat(doc["decided_at"]),
        "replayed": replayed,
    }
    return value


class SoapAdapter(Adapter):
    """SOAP 1.1 / 1.2 envelopes in, ``ScoreApplicationResponse`` envelopes out.

    Bound to its pipeline at start (:meth:`bind`, by :mod:`adapters.soap.endpoint`), which
    generates the WSDL and loads it into zeep.
    """

    name = "soap"
    media_type = "text/xml"

    binding: SoapBinding | None = None

    def bind(self, pipeline: Pipeline) -> SoapBinding:
        """Build this pipeline's :class:`SoapBinding` (WSDL + zeep document)."""
        schema = pipeline.input_schema()
        if schema is None:
            raise ValueError(f"pipeline {pipeline.name}: the soap adapter needs an input schema")
        self.binding = SoapBinding.build(pipeline.name, schema, pipeline.description)
        return self.binding

    def _bound(self) -> SoapBinding:
        if self.binding is None:
            raise RuntimeError("the soap adapter is not bound to a pipeline")
        return self.binding

    def decode(self, body: bytes, headers: Mapping[str, str]) -> Inbound:
        """Decode a whole ``ScoreApplication`` request (parse, route, deserialize)."""
        binding = self._bound()
        try:
            env = envelope(parse(body))
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        try:
            operation = binding.operation(env, None)
        except SoapFault as fault:
            raise bad_request(fault.message) from None
        if operation != "ScoreApplication":
            raise bad_request("Only ScoreApplication decides.")
        return binding.decode_application(env)

    def encode(self, document: Mapping[str, Any]) -> bytes:
        """A SOAP 1.1 ``ScoreApplicationResponse`` envelope."""
        return self._bound().response("1.1", "ScoreApplication", document)
