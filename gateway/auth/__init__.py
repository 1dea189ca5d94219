"""OAuth 2.0 for the gateway: authorization server and protected resources.

The gateway issues short-lived RS256 JWT access tokens (RFC 9068) to API clients through the
client-credentials grant (``POST /oauth/token``), publishes its public keys
(``GET /.well-known/jwks.json``) and checks a bearer token on every API route with
:func:`require_scopes`. Tokens of configured external issuers (the enterprise IdP) are
accepted too. A token check reads no database and makes no network call.

Wiring (the app factory)::

    from gateway import auth
    auth.init_app(app)          # after app.extensions["loangate"] is set

    @bp.post("/v1/decisions")
    @auth.require_scopes("decisions:create")
    def create_decision(): principal = auth.current_principal(); ...

Configuration: the ``auth`` section, see :mod:`gateway.auth.config` and
:data:`DEFAULT_AUTH_CONFIG`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flask import Flask
from sqlalchemy import Engine

from gateway.auth.config import DEFAULT_AUTH_CONFIG, AuthSettings
from gateway.auth.keys import KeyStore
from gateway.auth.resource import authenticate, current_principal, require_scopes
from gateway.auth.scopes import SCOPES, register_scope
from gateway.auth.server import GatewayAuthorizationServer, oauth_bp
from gateway.auth.tokens import Principal, TokenVerifier
from gateway.state import gateway_state

__all__ = [
    "DEFAULT_AUTH_CONFIG",
    "SCOPES",
    "AuthService",
    "AuthSettings",
    "KeyStore",
    "Principal",
    "TokenVerifier",
    "authenticate",
    "current_principal",
    "init_app",
    "register_scope",
    "require_scopes",
]


@dataclass
class AuthService:
    """The auth subsystem of one app, kept in ``gateway_state(app).extras["auth"]``."""

    settings: AuthSettings
    keys: KeyStore
    verifier: TokenVerifier
    server: GatewayAuthorizationServer
    engine: Engine

    def mint_token(self, client_id: str, scopes: Iterable[str]) -> str:
        """A signed access token for ``client_id``, without client authentication.

        For tests and operator tooling; API callers use ``POST /oauth/token``.
        """
        return self.server.mint(client_id, list(scopes))


def init_app(app: Flask) -> AuthService:
    """Build keys, verifier and authorization server from the app's ``auth`` config.

    Registers the ``oauth`` blueprint and stores the :class:`AuthService` in
    ``state.extras["auth"]``. Raises :class:`~gateway.errors.ConfigError` on a bad config.
    """
    state = gateway_state(app)
    settings = AuthSettings.from_config(
        state.config.get("auth"), state.instance_path, state.config_dir
    )
    keys = KeyStore.from_settings(settings)
    verifier = TokenVerifier.from_settings(settings, keys)
    server = GatewayAuthorizationServer(app, settings, keys, state.engine)
    app.register_blueprint(oauth_bp)
    service = AuthService(settings, keys, verifier, server, state.engine)
    state.extras["auth"] = service
    return service
