"""A loangate adapter for telex lines: ``duration_in_month=24|credit_amount=1500|...``.

``POST /v1/pipelines/<pipeline>/telex`` with ``Content-Type: text/plain`` and one line of
``key=value`` pairs separated by ``|`` (``application_id``, if present, is the envelope's)
answers one line: ``decision_id=...|outcome=...|reasons=A1,B2``. Errors are problem+json.
"""

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, g, request

from gateway import hookimpl
from gateway.api.openapi import decision_route
from gateway.auth import current_principal, require_scopes
from gateway.components import Adapter, Inbound
from gateway.errors import FieldError, Problem, validation_failed
from gateway.http import problem_response
from gateway.idempotency import idempotency_key
from gateway.state import gateway_state


class TelexAdapter(Adapter):
    """One ``key=value|key=value`` line in, one line out; whole numbers become integers."""

    name = "telex"
    media_type = "text/plain"

    def decode(self, body: bytes, headers: Mapping[str, str]) -> Inbound:
        fields: dict[str, Any] = {}
        for n, pair in enumerate(body.decode("utf-8", "replace").strip().split("|"), 1):
            key, sep, value = (part.strip() for part in pair.partition("="))
            if not (sep and key) or key in fields:
                raise validation_failed((FieldError(f"/{n}", "syntax", "not a new key=value"),))
            fields[key] = int(value) if value.removeprefix("-").isdecimal() else value
        app_id = fields.pop("application_id", None)
        return Inbound(fields, None if app_id is None else str(app_id), idempotency_key(headers))

    def encode(self, document: Mapping[str, Any]) -> bytes:
        reasons = ",".join(r["code"] for r in document["reason_codes"])
        decision = f"decision_id={document['decision_id']}|outcome={document['outcome']}"
        return f"{decision}|reasons={reasons}\n".encode()


bp = Blueprint("telex", __name__)


@bp.post("/v1/pipelines/<pipeline>/telex")
@require_scopes("decisions:create")
def decide(pipeline: str) -> Response:
    """Decide one telex line through ``pipeline`` (which must list the telex adapter)."""
    service = gateway_state().extras["decisions"]
    adapter = service.pipeline(pipeline, "telex").adapters["telex"]  # else 404
    if request.mimetype != "text/plain":
        raise Problem(415, "unsupported-media-type", "Unsupported media type", "Send text/plain.")
    args = (request.get_data(), request.headers, current_principal().client_id, g.request_id)
    result = service.decide(pipeline, "telex", *args)
    if result.problem is not None:
        return problem_response(result.problem)
    return Response(adapter.encode(result.document), result.status, mimetype=adapter.media_type)


@hookimpl
def register_adapters() -> list[type[Adapter]]:
    return [TelexAdapter]


@hookimpl
def register_blueprints() -> list[Blueprint]:
    return [bp]


@hookimpl
def register_openapi_paths() -> dict[str, Any]:
    return {"/v1/pipelines/{pipeline}/telex": decision_route("A telex line", "text/plain", "telex")}
