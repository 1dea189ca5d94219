"""The Outbound Messaging ``notifications`` message, read from a parsed SOAP 1.1 envelope.

Salesforce generates one WSDL per outbound message; every one has the same shape (namespace
``http://soap.sforce.com/2005/09/outbound``)::

    <notifications>
      <OrganizationId>00D...</OrganizationId>   the sending org
      <ActionId>04k...</ActionId>               the outbound message definition
      <SessionId/> <EnterpriseUrl/> <PartnerUrl/>   optional; read by nothing here
      <Notification>                            1 to 100
        <Id>04l...</Id>                         unique per notification, kept across retries
        <sObject xsi:type="sf:Loan_Application__c">  the record (urn:sobject.enterprise...)
          <sf:Id>a01...</sf:Id> <sf:Credit_Amount__c>12500.0</sf:Credit_Amount__c> ...

Everything a caller could get wrong in the message itself (structure, Ids, more than 100
notifications) is a :class:`~adapters.soap.faults.SoapFault` for the Client, raised before any
notification is decided. What is wrong *inside* a record is the mapping's business: it becomes
a logged rejection of that one notification.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from adapters.salesforce import ids
from adapters.soap.faults import SoapFault, client_fault
from adapters.soap.xml import SOAP11_ENV, Envelope
from gateway.errors import FieldError

OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
SOBJECT_NS = "urn:sobject.enterprise.soap.sforce.com"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
#: Most notifications Salesforce puts in one message.
MAX_NOTIFICATIONS = 100
#: Elements of ``notifications`` that are read by nothing here (SessionId is a credential:
#: it is never logged, and the guide says to leave it out of the message).
IGNORED = frozenset({"SessionId", "EnterpriseUrl", "PartnerUrl"})


@dataclass(frozen=True)
class Notification:
    """One notification: its Id (the de-duplication key) and the record it carries."""

    id: str  # 18 characters
    sobject: etree._Element
    #: The record's Id (``sf:Id``) in 18 characters, or None if absent or not an Id.
    record_id: str | None
    #: The record's type: the local part of ``xsi:type`` (``Loan_Application__c``), if given.
    sobject_type: str | None


@dataclass(frozen=True)
class OutboundMessage:
    """A ``notifications`` message."""

    organization_id: str  # 18 characters
    action_id: str
    notifications: tuple[Notification, ...]


def read(env: Envelope) -> OutboundMessage:
    """The message in ``env``; a Client fault naming what is wrong otherwise."""
    if env.version != "1.1":
        raise client_fault(
            f"Outbound messages are SOAP 1.1 ({SOAP11_ENV}).",
            "version-mismatch",
            special="VersionMismatch",
        )
    payload = env.payload
    qname = etree.QName(payload)
    if qname.localname != "notifications" or qname.namespace != OUTBOUND_NS:
        raise _fault(
            f"The Body must hold {{{OUTBOUND_NS}}}notifications, not {qname.text}.", "Body"
        )
    singles: dict[str, etree._Element] = {}
    notifications: list[etree._Element] = []
    for child in payload:
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child)
        if name.namespace != OUTBOUND_NS:
            raise _fault(f"Unexpected element {name.text} in notifications.", name.localname)
        if name.localname == "Notification":
            notifications.append(child)
        elif name.localname in ("OrganizationId", "ActionId", *IGNORED):
            if name.localname in singles:
                raise _fault(f"{name.localname} is repeated.", name.localname)
            singles[name.localname] = child
        else:
            raise _fault(f"Unexpected element {name.localname} in notifications.", name.localname)
    org = _id(singles.get("OrganizationId"), "OrganizationId")
    try:
        organization = ids.organization_id(org)
    except ValueError as exc:
        raise _fault(f"OrganizationId: {exc}.", "OrganizationId") from None
    action = _id(singles.get("ActionId"), "ActionId")
    if not notifications:
        raise _fault("The message holds no Notification.", "Notification")
    if len(notifications) > MAX_NOTIFICATIONS:
        raise _fault(
            f"The message holds {len(notifications)} notifications; at most "
            f"{MAX_NOTIFICATIONS} are accepted.",
            "Notification",
        )
    return OutboundMessage(
        organization, action, tuple(_notification(n, i) for i, n in enumerate(notifications))
    )


def _notification(node: etree._Element, index: int) -> Notification:
    where = f"Notification[{index + 1}]"
    id_node = sobject = None
    for child in node:
        if not isinstance(child.tag, str):
            continue
        tag = child.tag
        if tag == f"{{{OUTBOUND_NS}}}Id" and id_node is None:
            id_node = child
        elif tag == f"{{{OUTBOUND_NS}}}sObject" and sobject is None:
            sobject = child
        else:
            raise _fault(f"{where}: unexpected element {etree.QName(child).text}.", where)
    raw = _id(id_node, f"{where}/Id")
    try:
        notification_id = ids.to18(raw)
    except ValueError as exc:
        raise _fault(f"{where}/Id: {exc}.", f"{where}/Id") from None
    if sobject is None:
        raise _fault(f"{where}: sObject is missing.", f"{where}/sObject")
    record_id = None
    found = sobject.findtext(f"{{{SOBJECT_NS}}}Id")
    if found is not None:
        try:
            record_id = ids.to18(found.strip())
        except ValueError:
            record_id = None  # the notification is decided, and rejected for it
    return Notification(notification_id, sobject, record_id, record_type(sobject))


def record_type(sobject: etree._Element) -> str | None:
    value = sobject.get(XSI_TYPE)
    return None if value is None else value.rpartition(":")[2].strip() or None


def _id(node: etree._Element | None, where: str) -> str:
    if node is None:
        raise _fault(f"{where} is missing.", where)
    if len(node):
        raise _fault(f"{where} must be text.", where)
    text = (node.text or "").strip()
    if not text:
        raise _fault(f"{where} is empty.", where)
    return text[:40]


def _fault(message: str, field: str) -> SoapFault:
    return client_fault(message, errors=(FieldError(f"/{field}", "format", message),))
