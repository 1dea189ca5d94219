"""Idempotency keys: the ``Idempotency-Key`` HTTP header, checked the same way by every adapter."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.errors import FieldError, bad_request

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 200


def check_key(key: str, pointer: str = "/headers/Idempotency-Key") -> str:
    """``key`` if it is 1 to 200 printable characters; a 400 problem otherwise."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise bad_request(
            f"An idempotency key must be 1 to {MAX_KEY_LENGTH} printable characters",
            (FieldError(pointer, "format", "invalid idempotency key"),),
        )
    return key


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    """The ``Idempotency-Key`` header, if present and well-formed (else a 400)."""
    key = headers.get(HEADER)
    return None if key is None else check_key(key)
