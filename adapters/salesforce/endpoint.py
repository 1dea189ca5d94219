"""The Outbound Messaging endpoint: ``POST /v1/pipelines/<pipeline>/salesforce``.

A message goes: pipeline and adapter → shared secret (``?secret=``, when configured) → body cap
(the adapter's ``max_body_bytes``) → hardened parse (no DTD, no entities, no network) → SOAP 1.1
envelope → the ``notifications`` message, checked whole (structure, Ids, at most 100) → the
OrganizationId against the allow-list → one :meth:`~gateway.decisions.DecisionService.decide`
per notification, keyed on its Id → ``notificationsResponse`` with ``Ack`` true.

``Ack`` is sent only once every notification's decision is durably logged (or was logged by an
earlier delivery): anything that stops that is a SOAP fault, so Salesforce keeps the message
and retries it. Errors of the sender (a malformed message, an unknown organization) are Client
faults and log nothing; the log being unavailable is a retryable Server fault. A record that
cannot be mapped or validated is a logged rejection of that notification, and acknowledged.
"""

from __future__ import annotations

from collections import Counter

import structlog
from flask import Blueprint, Response, g, request
from lxml import etree

from adapters.salesforce.adapter import KEY_PREFIX, SalesforceAdapter, ack
from adapters.salesforce.message import Notification, OutboundMessage, read
from adapters.soap.endpoint import read_body, read_envelope
from adapters.soap.faults import SoapFault, client_fault, from_problem, render, server_fault
from gateway.auth.tokens import Principal
from gateway.decisions import DecisionService
from gateway.errors import Problem
from gateway.rate_limits import enforce as enforce_rate_limit
from gateway.state import gateway_state

log = structlog.get_logger(__name__)

bp = Blueprint("salesforce", __name__)

#: Namespace of the ``detail`` of the faults this endpoint answers.
DETAIL_NS = "urn:loangate:salesforce:1"
OPERATION = "notifications"
ACCEPTED_TYPES = ("text/xml", "application/xml")
#: The scope a Salesforce organization acts with (it holds no token; the allow-list admits it).
SCOPES = frozenset({"decisions:create"})


@bp.post("/v1/pipelines/<pipeline>/salesforce")
def notifications(pipeline: str) -> Response:
    """One outbound message: every notification decided and logged, then ``Ack``."""
    try:
        return _receive(pipeline)
    except SoapFault as fault:
        return _fault_response(fault)
    except Problem as problem:
        return _fault_response(from_problem(problem))
    except Exception as exc:  # the last line: a Server fault, never a traceback
        log.exception("salesforce_unhandled_error", error=type(exc).__name__, pipeline=pipeline)
        return _fault_response(server_fault())


def _receive(pipeline: str) -> Response:
    service: DecisionService = gateway_state().extras["decisions"]
    try:
        adapter = service.pipeline(pipeline, SalesforceAdapter.name).adapters["salesforce"]
    except Problem as problem:
        raise client_fault(problem.detail, "not-found", 404) from None
    assert isinstance(adapter, SalesforceAdapter)
    # The secret is in the query string, which the access log leaves out (it logs the path).
    if not adapter.secret_matches(request.args.get("secret")):
        raise client_fault("The endpoint URL's secret is missing or wrong.", "unauthorized", 401)
    body = read_body(
        ACCEPTED_TYPES, adapter.max_body_bytes, "Send the SOAP 1.1 message as text/xml."
    )
    message = read(read_envelope(body))
    client_id = adapter.client_id(message.organization_id)
    if client_id is None:
        log.warning("salesforce_unknown_organization", organization_id=message.organization_id)
        raise client_fault(
            f"Organization {message.organization_id} may not send to pipeline {pipeline!r}.",
            "forbidden",
            403,
        )
    _check_types(adapter, message)
    g.principal = Principal(client_id, SCOPES, "salesforce", None)
    enforce_rate_limit(client_id)  # the organization's client id carries its budget
    counts: Counter[str] = Counter()
    for notification in message.notifications:
        counts[_decide(service, pipeline, adapter, notification, client_id)] += 1
    log.info(
        "salesforce_notifications",
        pipeline=pipeline,
        organization_id=message.organization_id,
        action_id=message.action_id,
        **counts,
    )
    return Response(ack(), status=200, mimetype="text/xml")


def _check_types(adapter: SalesforceAdapter, message: OutboundMessage) -> None:
    """Every record is of the configured type (when one is): another type means the outbound
    message was pointed at the wrong pipeline, which no retry will mend."""
    if adapter.sobject is None:
        return
    for i, notification in enumerate(message.notifications):
        if notification.sobject_type not in (None, adapter.sobject):
            raise client_fault(
                f"Notification[{i + 1}]: this endpoint takes {adapter.sobject} records, "
                f"not {notification.sobject_type}.",
                "unsupported-record-type",
            )


def _decide(
    service: DecisionService,
    pipeline: str,
    adapter: SalesforceAdapter,
    notification: Notification,
    client_id: str,
) -> str:
    """Decide one notification (or find its logged decision): ``decided``, ``rejected`` or
    ``replayed``. A :class:`Problem` escapes only when nothing could be logged."""
    key = KEY_PREFIX + notification.id
    # What identifies the notification for the replay check: its Id and its record as sent.
    identity = notification.id.encode() + b"\n" + _c14n(notification.sobject)
    try:
        result = service.decide(
            pipeline,
            SalesforceAdapter.name,
            identity,
            {"Idempotency-Key": key},  # keys a rejection of a record that cannot be decoded
            client_id,
            g.request_id,
            decoder=lambda: adapter.inbound(notification),
        )
    except Problem as problem:
        if problem.slug != "idempotency-conflict":
            raise
        # Salesforce sends a record's latest data: a retry may carry fields changed since the
        # first delivery. The notification was decided then; that decision stands.
        log.info("salesforce_notification_changed", notification_id=notification.id)
        return "replayed"
    if result.replayed:
        return "replayed"
    return "rejected" if result.problem is not None else "decided"


def _c14n(element: etree._Element) -> bytes:
    return bytes(etree.tostring(element, method="c14n", exclusive=True))


def _fault_response(fault: SoapFault) -> Response:
    if not fault.client:
        log.warning("salesforce_server_fault", code=fault.code)
    payload, status, headers = render(fault, "1.1", DETAIL_NS, OPERATION, g.get("request_id"))
    return Response(payload, status=status, headers=headers, mimetype="text/xml")
