"""Single sign-on to the console through OpenID Connect (Authlib's Flask client).

The authorization code flow with PKCE (S256), state and nonce: ``/console/sso`` sends the
browser to the identity provider, ``/console/sso/callback`` takes the code back, exchanges
it (with the code verifier and the client's secret) for an ID token, checks the token
(signature from the provider's JWKS, issuer, audience, expiry, nonce) and reads the person's
name and role from configured claims. A role claim value maps onto a console role through
``console.oidc.roles``; a person with no mapped role is refused, whatever else the
provider says. The account is made (without a password) at the first sign-in, its role
updated at every sign-in; the session is the console's own (:mod:`gateway.console.sessions`).

    console:
      oidc:
        issuer: https://login.bank.example/realms/staff  # + /.well-known/openid-configuration
        client_id: loangate-console
        client_secret_env: LOANGATE_OIDC_CLIENT_SECRET
        role_claim: roles                 # a string or a list of strings
        name_claim: preferred_username
        roles: {credit-audit: auditor, credit-review: reviewer, risk: risk-officer}
"""

from __future__ import annotations

import os
from typing import Any

import requests
import structlog
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, abort, g, redirect, session, url_for
from joserfc.errors import JoseError

from gateway.console import sessions, users
from gateway.console.blueprint import bp, console_settings
from gateway.console.roles import ROLES
from gateway.state import gateway_state

log = structlog.get_logger(__name__)

#: Role precedence when the claim holds several mapped values: the least powerful wins,
#: so a broad group never widens a narrower grant by accident.
PRECEDENCE = ("auditor", "reviewer", "risk-officer", "admin")


def install(app: Flask, oidc: dict[str, Any]) -> None:
    """Register the identity provider of ``console.oidc`` on ``app``."""
    secret = os.environ.get(oidc.get("client_secret_env") or "", "")
    oauth = OAuth(app)
    oauth.register(
        "sso",
        client_id=oidc["client_id"],
        client_secret=secret or None,
        server_metadata_url=oidc["issuer"].rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={
            "scope": oidc.get("scope", "openid profile email"),
            "code_challenge_method": "S256",  # PKCE
            "timeout": 10,
        },
    )
    gateway_state(app).extras["console_sso"] = oauth


def _client() -> Any:
    oauth = gateway_state().extras.get("console_sso")
    if oauth is None:
        abort(404, "Single sign-on is not configured.")
    return oauth.sso


def role_from(claims: dict[str, Any], oidc: dict[str, Any]) -> str | None:
    """The console role of an ID token's ``claims`` (``None`` when no value maps)."""
    value = claims.get(oidc["role_claim"])
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    mapped = {oidc["roles"].get(v) for v in values if isinstance(v, str)}
    for role in PRECEDENCE:
        if role in mapped and role in ROLES:
            return role
    return None


@bp.get("/sso")
def sso() -> Any:
    """Send the browser to the identity provider."""
    return _client().authorize_redirect(url_for(".sso_callback", _external=True))


@bp.get("/sso/callback")
def sso_callback() -> Any:
    """The provider's answer: a code to exchange, then a console session."""
    oidc = console_settings()["oidc"]
    try:
        token = _client().authorize_access_token()
    except (OAuthError, JoseError, ValueError, requests.RequestException) as exc:
        # a refused code, a bad state, an ID token that fails a check, a provider not there
        log.info("console_sso_refused", reason=type(exc).__name__)
        abort(401, "Single sign-on failed: sign in again.")
    claims = dict(token.get("userinfo") or {})
    name = claims.get(oidc.get("name_claim", "preferred_username")) or claims.get("sub")
    role = role_from(claims, oidc)
    if not isinstance(name, str) or role is None:
        log.info("console_sso_refused", reason="no-role" if role is None else "no-name")
        abort(403, "Your account has no role in the console: ask an administrator.")
    engine = gateway_state().engine
    try:
        user = users.upsert_sso_user(engine, name, role)
    except users.UserError:
        abort(403, "This account name cannot be used in the console.")
    if user.disabled:
        abort(403, "This account is disabled.")
    sid, _csrf = sessions.start(engine, user.name)
    session.clear()
    session["sid"] = sid
    gateway_state().extras["access_trail"].record(
        actor=f"user:{user.name}",
        channel="console",
        action="GET /console/sso/callback",
        params={"role": user.role, "issuer": str(claims.get("iss", ""))},
        request_id=g.get("request_id"),
    )
    return redirect(url_for(".decisions"))
