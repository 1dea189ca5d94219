"""The OAuth scopes the gateway knows, and helpers to parse scope strings.

A scope is granted to a client when it is created (``loangate clients create --scopes``)
and checked per route by :func:`gateway.auth.require_scopes`. To add one (a plugin's own
route, say), call :func:`register_scope` at import or registration time.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Known scopes and what they allow. Extend with :func:`register_scope`.
SCOPES: dict[str, str] = {
    "decisions:create": "Submit loan applications and receive credit decisions.",
    "decisions:read": "Read logged decisions and their explanations (auditors).",
    "models:admin": "Register, promote and archive model versions.",
    "decisions:review": "Work the review queue: read referred decisions and record final outcomes.",
    "outcomes:write": "Record how granted loans turned out (repaid or defaulted).",
    "audit:read": "Read the access trail: who read which decisions, when, with which query.",
    "batches:create": "Upload batch files of applications and follow their jobs.",
    "pii:read": "See applicants' personal and protected values in logged decisions in clear.",
    "monitoring:read": "Read monitoring results: drift, performance, fairness, shadow models "
    "and business impact (aggregates only).",
}


def register_scope(name: str, description: str) -> None:
    """Make ``name`` a known scope (idempotent for the same description)."""
    if not name or any(c.isspace() or c in '"\\' for c in name):
        # RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        raise ValueError(f"invalid scope name {name!r}")
    existing = SCOPES.get(name)
    if existing is not None and existing != description:
        raise ValueError(f"scope {name!r} is already registered with another description")
    SCOPES[name] = description


def parse_scopes(value: str | Iterable[str] | None) -> frozenset[str]:
    """Scopes from a space-separated string (RFC 6749) or a list (e.g. an ``scp`` claim).

    Commas are accepted as separators too, for CLI convenience.
    """
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.replace(",", " ").split())
    return frozenset(s for item in value if isinstance(item, str) for s in item.split())


def unknown_scopes(scopes: Iterable[str]) -> list[str]:
    """The members of ``scopes`` that are not registered, sorted."""
    return sorted(s for s in scopes if s not in SCOPES)
