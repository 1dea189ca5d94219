"""Protected resources: the bearer-token check of API routes (RFC 6750).

``@require_scopes("decisions:read")`` on a view verifies the request's bearer token, checks
its scopes and puts the :class:`~gateway.auth.tokens.Principal` on ``flask.g.principal``;
otherwise it answers 401 (no or invalid token) or 403 (insufficient scope) as
``application/problem+json`` with a ``WWW-Authenticate`` challenge. Adapters that answer in
another protocol (SOAP faults) call :func:`authenticate` and turn the raised
:class:`~gateway.errors.Problem` into their own error.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

from flask import g, request

from gateway.auth.scopes import unknown_scopes
from gateway.auth.tokens import Principal, TokenVerifier, invalid_token
from gateway.errors import Problem
from gateway.http import problem_response
from gateway.rate_limits import enforce as enforce_rate_limit
from gateway.state import gateway_state

F = TypeVar("F", bound=Callable[..., Any])


def _verifier() -> TokenVerifier:
    return gateway_state().extras["auth"].verifier


def missing_token(realm: str = "loangate") -> Problem:
    """401 for a request without bearer credentials (RFC 6750 §3.1: no error code)."""
    return Problem(
        401,
        "unauthorized",
        "Authentication required",
        "Send an OAuth 2.0 access token: 'Authorization: Bearer <token>'",
        headers={"WWW-Authenticate": f'Bearer realm="{realm}"'},
    )


def insufficient_scope(required: Iterable[str], realm: str = "loangate") -> Problem:
    """403 for a valid token that lacks a required scope."""
    scope = " ".join(sorted(required))
    return Problem(
        403,
        "insufficient-scope",
        "Insufficient scope",
        f"This operation requires the scope(s): {scope}",
        headers={
            "WWW-Authenticate": (
                f'Bearer realm="{realm}", error="insufficient_scope", scope="{scope}"'
            )
        },
        extra={"required_scopes": sorted(required)},
    )


def authenticate(required: Iterable[str] = ()) -> Principal:
    """Verify the current request's bearer token and its scopes; sets ``g.principal``.

    Raises a :class:`~gateway.errors.Problem`: 401 without a valid token, 403 when a scope in
    ``required`` is missing, 429 when the client is over its rate limit
    (:mod:`gateway.rate_limits`).
    """
    verifier = _verifier()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        raise missing_token(verifier.realm)
    token = token.strip()
    if not token or " " in token:
        raise invalid_token("The Authorization header is malformed", realm=verifier.realm)
    principal = verifier.verify(token)
    needed = frozenset(required)
    if not principal.scopes.issuperset(needed):
        raise insufficient_scope(needed, verifier.realm)
    g.principal = principal
    enforce_rate_limit(principal.client_id)  # 429 before the request does any work
    return principal


def require_scopes(*scopes: str) -> Callable[[F], F]:
    """View decorator: the caller needs a valid bearer token holding all of ``scopes``."""
    bad = unknown_scopes(scopes)
    if bad:
        # Fail at import time: a typo here would otherwise lock every caller out.
        raise ValueError(f"unknown scope(s) {', '.join(bad)}; see gateway.auth.SCOPES")
    needed = frozenset(scopes)

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                authenticate(needed)
            except Problem as problem:
                return problem_response(problem)
            return view(*args, **kwargs)

        wrapper.required_scopes = needed  # type: ignore[attr-defined]  # for OpenAPI / audits
        return cast(F, wrapper)

    return decorator


def current_principal() -> Principal:
    """The principal of the current request (set by :func:`require_scopes`)."""
    principal = g.get("principal")
    if principal is None:
        raise RuntimeError("no authenticated principal: is the view under @require_scopes?")
    return cast(Principal, principal)
