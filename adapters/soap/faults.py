"""SOAP faults: what every error a SOAP caller can see is turned into.

A caller error is a ``Client`` (SOAP 1.1) / ``Sender`` (SOAP 1.2) fault whose ``detail`` names
the fields at fault; anything else is a ``Server`` / ``Receiver`` fault with a generic message,
marked retryable with a ``Retry-After`` header when retrying helps (the decision log was
unavailable). A traceback never reaches the caller.

HTTP status: SOAP 1.1 answers every fault with 500 (WS-I Basic Profile R1126); SOAP 1.2 answers
Sender faults with 400 and the others with 500 (SOAP 1.2 part 2, 7.5.1.2). A body over the size
limit is refused with 413 before it is read, and a client over its rate limit with 429 and
``Retry-After`` (a Client/Sender fault, ``retryable`` in its detail), in either version.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from adapters.soap.xml import SOAP11_ENV, SOAP12_ENV
from gateway.errors import FieldError, Problem

#: The message of every Server/Receiver fault that is not the log being unavailable.
GENERIC_SERVER_MESSAGE = "The service could not process the request."


@dataclass
class SoapFault(Exception):
    """A fault to answer. ``code`` is the stable reason (the REST problem slug)."""

    client: bool
    message: str
    code: str
    status: int  # the status the REST API gives the same error
    errors: tuple[FieldError, ...] = ()
    retry_after: int | None = None
    decision_id: str | None = None
    #: SOAP 1.1 faultcode / 1.2 Code value overriding Client/Server: VersionMismatch,
    #: MustUnderstand.
    special: str | None = None
    #: A qualified SOAP 1.2 Subcode (namespace, local name), e.g. WS-Security's.
    subcode: tuple[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.code}: {self.message}")


def client_fault(
    message: str, code: str = "malformed-request", status: int = 400, **kwargs: object
) -> SoapFault:
    """A Client/Sender fault."""
    return SoapFault(True, message, code, status, **kwargs)  # type: ignore[arg-type]


def server_fault() -> SoapFault:
    """A Server/Receiver fault with the generic message."""
    return SoapFault(False, GENERIC_SERVER_MESSAGE, "internal-error", 500)


def from_problem(problem: Problem) -> SoapFault:
    """The fault for a :class:`Problem` raised on the shared decision path."""
    retry = problem.headers.get("Retry-After")
    if problem.client_error:
        message = problem.detail or problem.title
        if problem.errors:  # name the fields in the fault string too: many stacks show only it
            named = "; ".join(f"{soap_field(e.pointer)}: {e.detail}" for e in problem.errors)
            message = f"{message} ({named})"
    elif retry is not None:
        message = problem.detail  # the log is down: say so, the caller is to retry
    else:
        message = GENERIC_SERVER_MESSAGE
    return SoapFault(
        problem.client_error,
        message,
        problem.slug,
        problem.status,
        errors=problem.errors,
        retry_after=int(retry) if retry is not None and retry.isdigit() else None,
        decision_id=problem.extra.get("decision_id"),
    )


def soap_path(operation: str, pointer: str) -> str:
    """The element path of a JSON pointer into the canonical request.

    ``/applicant/age_in_years`` -> ``ScoreApplication/applicant/age_in_years``;
    ``/headers/IdempotencyKey`` -> ``Header/IdempotencyKey``.
    """
    if pointer.startswith("/headers/"):
        return "Header/" + pointer.rsplit("/", 1)[-1]
    if pointer == "/application_id":
        return f"{operation}/applicationId"
    return operation + pointer


def soap_field(pointer: str) -> str:
    """The element a pointer names: ``/applicant/age_in_years`` -> ``age_in_years``."""
    return {"/application_id": "applicationId"}.get(pointer, pointer.rsplit("/", 1)[-1])


def render(
    fault: SoapFault,
    version: str,
    tns: str,
    operation: str = "ScoreApplication",
    request_id: str | None = None,
) -> tuple[bytes, int, dict[str, str]]:
    """``(body, HTTP status, headers)`` of ``fault`` as a SOAP ``version`` envelope."""
    env = SOAP11_ENV if version == "1.1" else SOAP12_ENV
    nsmap = {"soap" if version == "1.1" else "env": env, "lg": tns}
    prefix = "soap" if version == "1.1" else "env"
    root = etree.Element(f"{{{env}}}Envelope", nsmap=nsmap)
    body = etree.SubElement(root, f"{{{env}}}Body")
    node = etree.SubElement(body, f"{{{env}}}Fault")
    base = fault.special or (
        ("Client" if fault.client else "Server")
        if version == "1.1"
        else ("Sender" if fault.client else "Receiver")
    )
    if version == "1.1":
        # SOAP 1.1 has no subcodes: the WS-Security code is in the detail's ``code``.
        etree.SubElement(node, "faultcode").text = f"{prefix}:{base}"
        etree.SubElement(node, "faultstring").text = fault.message
        detail = etree.SubElement(node, "detail")
    else:
        code_el = etree.SubElement(node, f"{{{env}}}Code")
        etree.SubElement(code_el, f"{{{env}}}Value").text = f"{prefix}:{base}"
        if fault.subcode is not None:
            ns, local = fault.subcode
            sub = etree.SubElement(code_el, f"{{{env}}}Subcode", nsmap={"sub": ns})
            etree.SubElement(sub, f"{{{env}}}Value").text = f"sub:{local}"
        reason = etree.SubElement(node, f"{{{env}}}Reason")
        text = etree.SubElement(reason, f"{{{env}}}Text")
        text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        text.text = fault.message
        detail = etree.SubElement(node, f"{{{env}}}Detail")
    _detail(etree.SubElement(detail, f"{{{tns}}}fault"), fault, tns, operation, request_id)
    headers = dict(fault.headers)
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    if fault.status in (413, 429):  # refused before any work: HTTP says why, as for REST
        status = fault.status
    elif version == "1.1":
        status = 500
    else:
        status = 400 if fault.client and fault.special is None else 500
    payload = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return payload, status, headers


def _detail(
    node: etree._Element, fault: SoapFault, tns: str, operation: str, request_id: str | None
) -> None:
    def sub(parent: etree._Element, tag: str, text: object) -> etree._Element:
        el = etree.SubElement(parent, f"{{{tns}}}{tag}")
        el.text = str(text)
        return el

    sub(node, "code", fault.code)
    sub(node, "status", fault.status)
    sub(node, "retryable", "true" if fault.retry_after is not None else "false")
    if fault.retry_after is not None:
        sub(node, "retryAfterSeconds", fault.retry_after)
    if request_id:
        sub(node, "requestId", request_id)
    if fault.decision_id:
        sub(node, "decisionId", fault.decision_id)
    if fault.errors:
        errors = etree.SubElement(node, f"{{{tns}}}errors")
        for err in fault.errors:
            item = etree.SubElement(errors, f"{{{tns}}}error")
            sub(item, "field", soap_field(err.pointer))
            sub(item, "path", soap_path(operation, err.pointer))
            sub(item, "code", err.code)
            sub(item, "detail", err.detail)
