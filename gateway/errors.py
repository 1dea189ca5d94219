"""Errors the gateway answers with, as RFC 9457 problem details.

Every error a caller can see is a :class:`Problem`. Adapters turn one into their own
protocol (``application/problem+json`` for REST, a SOAP fault for SOAP); nothing else
reaches a caller, so a traceback never does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One field-level reason a request was refused.

    ``pointer`` is an RFC 6901 JSON pointer into the canonical request
    (``/applicant/age_in_years``), ``code`` a stable machine-readable reason
    (``required``, ``type``, ``minimum``, ``enum``, ``unknown`` ...).
    """

    pointer: str
    code: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "code": self.code, "detail": self.detail}


@dataclass
class Problem(Exception):
    """An error with an HTTP status that a caller is meant to see."""

    status: int
    slug: str
    title: str
    detail: str = ""
    errors: tuple[FieldError, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.status} {self.title}: {self.detail}")

    @property
    def type(self) -> str:
        return f"/problems/{self.slug}"

    @property
    def client_error(self) -> bool:
        """True when the caller can fix the request (SOAP: Client/Sender fault)."""
        return 400 <= self.status < 500

    def as_dict(self, instance: str | None = None, request_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if request_id:
            body["request_id"] = request_id
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        body.update(self.extra)
        return body


def bad_request(detail: str, errors: tuple[FieldError, ...] = ()) -> Problem:
    return Problem(400, "malformed-request", "Malformed request", detail, errors)


def validation_failed(errors: tuple[FieldError, ...], detail: str = "") -> Problem:
    return Problem(
        422,
        "validation-error",
        "The application failed validation",
        detail or f"{len(errors)} field(s) failed validation",
        errors,
    )


def not_found(detail: str) -> Problem:
    return Problem(404, "not-found", "Not found", detail)


def log_unavailable(retry_after: int = 2) -> Problem:
    """The decision log cannot be written: retryable, and no decision was given."""
    return Problem(
        503,
        "log-unavailable",
        "Decision log unavailable",
        "The decision could not be recorded, so none was given. Retry later.",
        headers={"Retry-After": str(retry_after)},
    )


class ConfigError(Exception):
    """The gateway configuration is invalid; the message names where."""
