"""The ``salesforce`` adapter component: its settings, and one notification's record mapped onto
the canonical application.

Settings (``{name: salesforce, config: {...}}`` in a pipeline's adapters)::

    mapping: mappings/salesforce-loan-application.yaml   # the sObject's fields -> the application
    organizations: [00D5g0000LoanGwEQI]                  # orgs allowed to send (15 or 18 chars)
    secret_env: LOANGATE_SALESFORCE_SECRET               # optional: ?secret= the URL must carry
    sobject: Loan_Application__c                         # optional: the only record type taken
    max_body_bytes: 1048576                              # the route's body cap (100 records)

Stable facts other components build on: decisions are logged with adapter ``salesforce``,
client id ``salesforce:<18-character OrganizationId>``, application id = the record's 18-character
Id (``sf:Id`` of the sObject) and idempotency key ``sfdc-notification:<notification Id>``.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from lxml import etree

from adapters.mapped import MappedXmlAdapter
from adapters.salesforce import ids
from adapters.salesforce.message import OUTBOUND_NS, SOBJECT_NS, Notification, record_type
from adapters.soap.xml import SOAP11_ENV, XMLRefused, parse
from gateway.components import Inbound, Services
from gateway.errors import ConfigError, FieldError, bad_request, validation_failed
from gateway.mappings import MappingError

#: Prefix of the idempotency key of a notification's decision.
KEY_PREFIX = "sfdc-notification:"
#: Prefix of the client id of an organization's decisions.
CLIENT_PREFIX = "salesforce:"
#: Where a missing or malformed record Id is reported.
RECORD_ID_PATH = "sObject/sf:Id"
MIN_SECRET_LENGTH = 16
DEFAULT_MAX_BODY_BYTES = 1_048_576  # 100 records of a few dozen fields fit with room to spare


class SalesforceAdapter(MappedXmlAdapter):
    """Salesforce Outbound Messaging: one decision per ``Notification``'s sObject."""

    name = "salesforce"
    media_type = "text/xml"
    default_mapping = "mappings/salesforce-loan-application.yaml"
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["organizations"],
        "properties": {
            "mapping": {"type": "string", "description": "mapping file of the sObject"},
            "organizations": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "pattern": "^00D[a-zA-Z0-9]{12}([a-zA-Z0-9]{3})?$"},
                "description": "OrganizationIds allowed to send (15 or 18 characters)",
            },
            "secret_env": {
                "type": "string",
                "pattern": "^[A-Z_][A-Z0-9_]*$",
                "description": "environment variable holding the secret the URL must carry",
            },
            "sobject": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]*$"},
            "max_body_bytes": {"type": "integer", "minimum": 1024, "maximum": 16_777_216},
        },
    }

    def __init__(self, config: Mapping[str, Any], services: Services) -> None:
        super().__init__(config, services)
        for key in ("application_id", "idempotency_key"):
            if getattr(self.mapping, key) is not None:
                raise ConfigError(
                    f"mapping {self.mapping.name}: {key}: the salesforce adapter sets it itself "
                    "(the record Id and the notification Id); remove it from the mapping"
                )
        allowed = set()
        for i, org in enumerate(self.config["organizations"]):
            try:
                allowed.add(ids.organization_id(org))
            except ValueError as exc:
                raise ConfigError(f"organizations.{i}: {org!r}: {exc}") from None
        self.organizations = frozenset(allowed)
        self.sobject: str | None = self.config.get("sobject")
        self.max_body_bytes: int = self.config.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES)
        self._secret: bytes | None = None
        env = self.config.get("secret_env")
        if env is not None:
            value = os.environ.get(env, "")
            if len(value) < MIN_SECRET_LENGTH:
                raise ConfigError(
                    f"secret_env: the environment variable {env} must hold a secret of at "
                    f"least {MIN_SECRET_LENGTH} characters"
                )
            self._secret = value.encode()

    @property
    def needs_secret(self) -> bool:
        """Whether the endpoint URL must carry the shared secret."""
        return self._secret is not None

    def secret_matches(self, given: str | None) -> bool:
        """``given`` is the configured secret (compared in constant time); True if none is set."""
        if self._secret is None:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self._secret)

    def client_id(self, organization_id: str) -> str | None:
        """The client id of an allowed organization's decisions; None if it is not allowed."""
        return CLIENT_PREFIX + organization_id if organization_id in self.organizations else None

    def inbound(self, notification: Notification) -> Inbound:
        """The canonical application of one notification's record.

        Raises a 422 :class:`~gateway.errors.Problem` (logged as the notification's rejection,
        under the record Id when there is one) if the record has no valid Id or cannot be mapped.
        """
        key = KEY_PREFIX + notification.id
        record_id = notification.record_id
        if record_id is None:
            raise validation_failed(
                (FieldError(RECORD_ID_PATH, "required", "the record has no valid Salesforce Id"),)
            )
        try:
            result = self.mapping.apply(notification.sobject)
        except MappingError as exc:
            problem = exc.problem()
            problem.extra["application_id"] = record_id
            raise problem from None
        return Inbound(fields=result.fields, application_id=record_id, idempotency_key=key)

    def decode(self, body: bytes, headers: Mapping[str, str]) -> Inbound:
        """One record given alone: an ``<sObject>`` document (as ``loangate mappings apply``
        reads it). The endpoint reads whole messages; see :mod:`adapters.salesforce.endpoint`."""
        try:
            sobject = parse(body)
        except XMLRefused as exc:
            raise bad_request(str(exc)) from None
        found = sobject.findtext(f"{{{SOBJECT_NS}}}Id")
        try:
            record_id = ids.to18((found or "").strip()) if found else None
        except ValueError:
            record_id = None
        notification = Notification("", sobject, record_id, record_type(sobject))
        inbound = self.inbound(notification)
        return Inbound(fields=inbound.fields, application_id=inbound.application_id)

    def encode(self, document: Mapping[str, Any]) -> bytes:
        """What a notification is answered: ``notificationsResponse`` with ``Ack`` true (an
        outbound message carries no per-record answer; the decision is in the log)."""
        return ack()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "organizations": sorted(self.organizations)}


def ack() -> bytes:
    """The SOAP 1.1 envelope Salesforce takes as delivery: ``<Ack>true</Ack>``."""
    root = etree.Element(f"{{{SOAP11_ENV}}}Envelope", nsmap={"soapenv": SOAP11_ENV})
    body = etree.SubElement(root, f"{{{SOAP11_ENV}}}Body")
    response = etree.SubElement(
        body, f"{{{OUTBOUND_NS}}}notificationsResponse", nsmap={None: OUTBOUND_NS}
    )
    etree.SubElement(response, f"{{{OUTBOUND_NS}}}Ack").text = "true"
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
