"""The REST (JSON) adapter.

Request body::

    {"application_id": "LN-2026-0001", "applicant": {"duration_in_month": 24, ...}}

``application_id`` is optional; the ``Idempotency-Key`` header makes a retry safe.
Malformed JSON is a 400; a body of the wrong shape, an unknown top-level member or
a bad ``application_id`` is a 422 naming the member.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.components import Adapter, Inbound
from gateway.errors import FieldError, bad_request, validation_failed
from gateway.hookspecs import hookimpl
from gateway.idempotency import idempotency_key

TOP_LEVEL = {"application_id", "applicant"}
MAX_ID_LENGTH = 200


class RestAdapter(Adapter):
    """Canonical JSON in, the decision document out."""

    name = "rest"
    media_type = "application/json"

    def decode(self, body: bytes, headers: Mapping[str, str]) -> Inbound:
        key = idempotency_key(headers)
        try:
            doc: Any = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise bad_request(f"The body is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise validation_failed((FieldError("", "type", "the body must be a JSON object"),))
        errors = [
            FieldError(f"/{k}", "unknown", "unknown member") for k in doc if k not in TOP_LEVEL
        ]
        applicant = doc.get("applicant")
        if applicant is None:
            errors.append(FieldError("/applicant", "required", "is required"))
        elif not isinstance(applicant, dict):
            errors.append(FieldError("/applicant", "type", "must be an object"))
        app_id = doc.get("application_id")
        if app_id is not None and (
            not isinstance(app_id, str) or not 0 < len(app_id) <= MAX_ID_LENGTH
        ):
            errors.append(
                FieldError(
                    "/application_id",
                    "type",
                    f"must be a string of 1 to {MAX_ID_LENGTH} characters",
                )
            )
        if errors:
            raise validation_failed(tuple(errors))
        assert isinstance(applicant, dict)
        return Inbound(fields=applicant, application_id=app_id, idempotency_key=key)

    def encode(self, document: Mapping[str, Any]) -> bytes:
        return orjson.dumps(document)


@hookimpl
def register_adapters() -> list[type[Adapter]]:
    return [RestAdapter]
