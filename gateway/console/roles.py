"""Console roles, and the API scopes each one holds.

A person signed in to the console acts with the scopes of their role, the same scopes an
API client holds (:mod:`gateway.auth.scopes`), checked on the server for every page and
action. Single sign-on maps a claim's values onto these role names (``console.oidc``).
"""

from __future__ import annotations

#: Role -> scopes. An auditor reads; a reviewer works referrals; a risk officer also sees
#: personal values in clear and the monitoring; an admin manages models as well.
ROLES: dict[str, frozenset[str]] = {
    "auditor": frozenset({"decisions:read", "audit:read", "monitoring:read"}),
    "reviewer": frozenset({"decisions:read", "decisions:review"}),
    "risk-officer": frozenset({"decisions:read", "monitoring:read", "pii:read"}),
    "admin": frozenset(
        {
            "decisions:read",
            "decisions:review",
            "audit:read",
            "monitoring:read",
            "pii:read",
            "models:admin",
        }
    ),
}


def scopes_of(role: str) -> frozenset[str]:
    """The scopes of ``role`` (none for an unknown role: it can reach nothing)."""
    return ROLES.get(role, frozenset())
