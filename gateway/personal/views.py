"""What the caller of a read route may see of stored decision documents.

Every route that answers with a logged document (one decision, lists, exports, replays,
the review queue) passes the stored bytes through :func:`documents_for_caller` (or
:func:`document_for_caller` for a parsed one): with the ``pii:read`` scope personal values
are decrypted (``{"$erased": true}`` for an erased applicant), without it they and the
protected attributes are masked (``{"$masked": true}``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.auth import current_principal
from gateway.personal.service import PersonalData
from gateway.state import gateway_state

#: The scope that lets a caller read personal and protected values in clear.
PII_READ = "pii:read"


def personal_data() -> PersonalData:
    """The gateway's :class:`PersonalData` service."""
    service: PersonalData = gateway_state().extras["personal_data"]
    return service


def caller_can_read() -> bool:
    """True when the current caller holds ``pii:read``."""
    return current_principal().has(PII_READ)


def documents_for_caller(payloads: Sequence[bytes]) -> list[bytes]:
    """Stored JSON documents as the current caller may see them, as JSON."""
    return personal_data().reveal_payloads(payloads, caller_can_read())


def document_for_caller(document: dict[str, Any]) -> dict[str, Any]:
    """A parsed stored document as the current caller may see it."""
    return personal_data().reveal(document, caller_can_read())
