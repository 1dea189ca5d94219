"""The authorization server: client-credentials tokens, JWKS and server metadata.

* ``POST /oauth/token`` — RFC 6749 §4.4 client-credentials grant, client authentication by
  ``client_secret_basic`` or ``client_secret_post``; answers an RFC 9068 JWT access token
  signed RS256 by the active key (header ``kid``, ``typ: at+jwt``). Errors are RFC 6749 JSON
  (``{"error": "invalid_client"}``, 401 for bad client authentication), made by Authlib.
* ``GET /.well-known/jwks.json`` — the public keys (cacheable).
* ``GET /.well-known/oauth-authorization-server`` — RFC 8414 metadata.

The token endpoint reads the client from the database; nothing else here does.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InsecureTransportError,
    InvalidClientError,
    InvalidScopeError,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from flask import Blueprint, Flask, Response, url_for
from joserfc.jwk import KeySet
from sqlalchemy import Engine

from gateway.auth.clients import ClientRecord, get_client
from gateway.auth.config import AuthSettings
from gateway.auth.keys import ALGORITHM, KeyStore
from gateway.auth.scopes import SCOPES, parse_scopes, unknown_scopes
from gateway.http import json_response
from gateway.state import gateway_state

if TYPE_CHECKING:
    from gateway.auth import AuthService

log = logging.getLogger(__name__)

AUTH_METHODS = ("client_secret_basic", "client_secret_post")
GRANT_TYPE = "client_credentials"
#: How long callers may cache the JWKS. New keys sign at once, so verifiers elsewhere must
#: re-fetch on an unknown kid (every common JWT library does).
JWKS_MAX_AGE = 300


class _Client(ClientMixin):
    """Authlib's view of a stored client: confidential, client-credentials only."""

    def __init__(self, record: ClientRecord) -> None:
        self.record = record

    def get_client_id(self) -> str:
        return self.record.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        # No scope requested: all of the client's scopes (RFC 6749 §3.3 "pre-defined default").
        # A requested scope was already checked to be a subset by the grant.
        requested = parse_scopes(scope) or self.record.scopes
        return " ".join(sorted(requested & self.record.scopes))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return self.record.check_secret(client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == GRANT_TYPE


class _ClientCredentialsGrant(ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)

    def validate_requested_scope(self) -> None:
        requested = parse_scopes(self.request.payload.scope)
        bad = unknown_scopes(requested)
        if bad:
            raise InvalidScopeError(f"Unknown scope(s): {' '.join(bad)}")
        missing = requested - self.request.client.record.scopes
        if missing:
            raise InvalidScopeError(f"The client may not request: {' '.join(sorted(missing))}")


class GatewayTokenGenerator(JWTBearerTokenGenerator):
    """RFC 9068 JWT access tokens signed by the key store's active key.

    Authlib builds the claims (iss, sub, aud, exp, iat, jti, client_id, scope) and the
    ``typ: at+jwt`` header; joserfc signs with a KeySet holding only the active key, which puts
    its ``kid`` in the header.
    """

    def __init__(self, settings: AuthSettings, keys: KeyStore) -> None:
        super().__init__(
            issuer=settings.issuer, alg=ALGORITHM, expires_generator=settings.token_ttl_seconds
        )
        self.audience = settings.audience
        self.keys = keys

    def get_jwks(self) -> KeySet:
        """The signing KeySet: the active key only."""
        self.keys.refresh_if_changed()  # another process may have rotated the key
        return self.keys.signing_keyset

    def get_audiences(self, client: Any, user: Any, scope: str) -> str:
        """``auth.audience`` (Authlib's default would be the client id)."""
        return self.audience

    def get_jti(self, client: Any, grant_type: str, user: Any, scope: str) -> str:
        """128 random bits, URL-safe."""
        return secrets.token_urlsafe(16)


class _RecordClient:
    """Minimal client for minting a token without a stored client (tests, tools)."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id

    def get_client_id(self) -> str:
        return self.client_id


class _DropIssuedTokenLog(logging.Filter):
    """Authlib logs each issued token dict at DEBUG; a token must never reach a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Issue token", "Grant token"))


_grant_logger = logging.getLogger("authlib.oauth2.rfc6749.grants.client_credentials")
if not any(isinstance(f, _DropIssuedTokenLog) for f in _grant_logger.filters):
    _grant_logger.addFilter(_DropIssuedTokenLog())


class GatewayAuthorizationServer(AuthorizationServer):
    """Authlib's Flask authorization server bound to the gateway's clients and keys."""

    def __init__(self, app: Flask, settings: AuthSettings, keys: KeyStore, engine: Engine):
        super().__init__()
        self.engine = engine
        self.settings = settings
        self.token_generator = GatewayTokenGenerator(settings, keys)
        self.init_app(app, query_client=self._query, save_token=self._save)
        self.register_token_generator("default", self.token_generator)
        self.register_grant(_ClientCredentialsGrant)

    def _query(self, client_id: str) -> _Client | None:
        if not client_id or len(client_id) > 100:
            return None
        record = get_client(self.engine, client_id)
        if record is None or record.disabled:
            return None
        return _Client(record)

    @staticmethod
    def _save(token: dict[str, Any], request: Any) -> None:
        """Self-contained JWTs are not stored: verification needs no database."""

    def authenticate_client(self, request: Any, methods: Any, endpoint: str = "token") -> Any:
        """Authlib's client authentication, with one uniform failure answer."""
        try:
            return super().authenticate_client(request, methods, endpoint)
        except InvalidClientError as error:
            # One answer for unknown, disabled and wrong-secret clients, whatever the method:
            # 401 (as for Basic auth) and no hint of which client ids exist.
            error.status_code = 401
            error.description = "Client authentication failed"
            raise

    def validate_requested_scope(self, scope: str | None) -> None:
        """Refuse scopes the gateway does not know (``invalid_scope``)."""
        # SCOPES can grow after start (plugins); read it at request time.
        bad = unknown_scopes(parse_scopes(scope))
        if bad:
            raise InvalidScopeError(f"Unknown scope(s): {' '.join(bad)}")

    def mint(self, client_id: str, scopes: frozenset[str] | set[str] | list[str]) -> str:
        """An access token for ``client_id`` with ``scopes``, bypassing client authentication.

        For tests and operator tooling only; the scopes are not checked against a client.
        """
        return str(
            self.token_generator.access_token_generator(
                client=_RecordClient(client_id),
                grant_type=GRANT_TYPE,
                user=None,
                scope=" ".join(sorted(scopes)),
            )
        )


oauth_bp = Blueprint("oauth", __name__)


def _service() -> AuthService:
    return gateway_state().extras["auth"]


@oauth_bp.post("/oauth/token")
def token() -> Response:
    """RFC 6749 token endpoint (client-credentials grant)."""
    try:
        return _service().server.create_token_response()
    except InsecureTransportError:
        # Behind a TLS-terminating proxy, apply werkzeug's ProxyFix so request.url is https.
        return json_response(
            {"error": "invalid_request", "error_description": "HTTPS is required"},
            400,
            {"Cache-Control": "no-store"},
        )


@oauth_bp.get("/.well-known/jwks.json")
def jwks() -> Response:
    """The public JWK Set of the gateway's signing keys."""
    return Response(
        _service().keys.jwks_json(),
        mimetype="application/jwk-set+json",
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"},
    )


@oauth_bp.get("/.well-known/oauth-authorization-server")
def metadata() -> Response:
    """RFC 8414 authorization server metadata."""
    settings = _service().settings
    return json_response(
        {
            "issuer": settings.issuer,
            "token_endpoint": url_for("oauth.token", _external=True),
            "jwks_uri": url_for("oauth.jwks", _external=True),
            "grant_types_supported": [GRANT_TYPE],
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "scopes_supported": sorted(SCOPES),
            "response_types_supported": [],
        },
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"},
    )
