"""The ``salesforce`` plugin: the adapter, its endpoint and its OpenAPI description."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from adapters.salesforce.adapter import SalesforceAdapter
from adapters.salesforce.endpoint import bp
from gateway.components import Adapter
from gateway.hookspecs import hookimpl

_XML: dict[str, Any] = {"text/xml": {}}


@hookimpl
def register_adapters() -> list[type[Adapter]]:
    return [SalesforceAdapter]


@hookimpl
def register_blueprints() -> list[Blueprint]:
    return [bp]


@hookimpl
def register_openapi_paths() -> dict[str, Any]:
    return {
        "/v1/pipelines/{pipeline}/salesforce": {
            "post": {
                "summary": "Receive a Salesforce outbound message (notifications); Ack when logged",
                "description": "See docs/integration/salesforce.md. SOAP 1.1 "
                "(namespace http://soap.sforce.com/2005/09/outbound): each Notification's "
                "sObject is mapped and decided once, keyed on the notification Id, and the "
                "answer is notificationsResponse with Ack true only after every decision is "
                "logged. No bearer token: the OrganizationId must be on the adapter's "
                "allow-list, and the URL must carry ?secret= when the adapter sets secret_env. "
                "Errors are SOAP faults, not problem+json.",
                "tags": ["soap"],
                "security": [{}],
                "parameters": [
                    {
                        "name": "pipeline",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "secret",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "The shared secret, when the adapter sets secret_env.",
                    },
                ],
                "requestBody": {"required": True, "content": dict(_XML)},
                "responses": {
                    "200": {
                        "description": "notificationsResponse, Ack true: every notification "
                        "is decided and logged (rejections included)",
                        "content": dict(_XML),
                    },
                    "413": {"description": "Client fault: body over the adapter's size limit"},
                    "429": {
                        "description": "Client fault: the organization's client is over its "
                        "rate limit; nothing logged (Retry-After)",
                        "content": dict(_XML),
                    },
                    "500": {
                        "description": "SOAP 1.1 fault: Client (malformed message, unknown "
                        "organization, wrong secret, more than 100 notifications; nothing "
                        "logged) or Server (the log is unavailable; retried by Salesforce)",
                        "content": dict(_XML),
                    },
                },
            }
        }
    }
