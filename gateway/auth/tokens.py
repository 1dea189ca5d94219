"""Access-token verification: the hot path of every protected request.

:class:`TokenVerifier` accepts the gateway's own RS256 tokens (RFC 9068, ``typ: at+jwt``) and
tokens of the configured ``auth.trusted_issuers``. Per request it does no database read and no
network call: keys are parsed once at start into joserfc key objects. The flow is

1. split the compact JWS and read its header and (unverified) payload, only to route:
   the ``iss`` picks the issuer, the header ``kid`` picks one of *that issuer's* keys;
2. refuse an algorithm the issuer does not allow (``none`` and ``HS*`` are never allowed);
3. verify the signature with joserfc's JWS algorithm, then the claims with joserfc's claims
   registry (iss, aud, exp, nbf, iat; leeway);
4. build a :class:`Principal` from the verified claims.

An unknown kid triggers a refresh of the issuer's keys, rate-limited: the gateway's own key
directory (a ``stat``, at most once a second) or a ``jwks_uri`` (at most once per
:data:`JWKS_REFRESH_SECONDS`, by one thread, the others not waiting).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import string
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import requests
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError
from joserfc.jwk import Key, import_key
from joserfc.jws import JWSAlgModel, JWSRegistry
from joserfc.jwt import JWTClaimsRegistry

from gateway.auth.config import AuthSettings, TrustedIssuerSettings
from gateway.auth.keys import ALGORITHM, KeyStore
from gateway.auth.scopes import parse_scopes
from gateway.errors import ConfigError, Problem

log = logging.getLogger(__name__)

#: Longest token accepted (bytes); real access tokens are well under 2 KB.
MAX_TOKEN_LENGTH = 8192
#: Verified tokens remembered per process (see ``TokenVerifier._verified``).
MAX_VERIFIED_TOKENS = 10_000
#: A jwks_uri is re-fetched at most this often, and only when an unknown kid arrives.
JWKS_REFRESH_SECONDS = 300.0
JWKS_FETCH_TIMEOUT = 5.0
#: The own key directory is re-checked at most this often on an unknown kid.
LOCAL_REFRESH_SECONDS = 1.0
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
DEFAULT_CLIENT_ID_CLAIMS = ("client_id", "azp", "sub")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of a request."""

    client_id: str
    scopes: frozenset[str]
    issuer: str
    token_id: str | None

    def has(self, *scopes: str) -> bool:
        """True when the principal holds every one of ``scopes``."""
        return self.scopes.issuperset(scopes)


def invalid_token(detail: str, *, realm: str = "loangate") -> Problem:
    """A 401 problem with an RFC 6750 ``invalid_token`` challenge."""
    return Problem(
        401,
        "invalid-token",
        "Invalid access token",
        detail,
        headers={
            "WWW-Authenticate": (
                f'Bearer realm="{realm}", error="invalid_token", error_description="{detail}"'
            )
        },
    )


_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_B64URL_INDEX = {
    c: i
    for i, c in enumerate(string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_")
}


def _canonical_b64url(segment: str) -> bool:
    """Strict RFC 7515 base64url: alphabet only, no padding, zero trailing bits.

    Python's decoder skips stray characters and ignores trailing bits, so without this check
    several different strings would carry the same signed bytes.
    """
    rest = len(segment) % 4
    if rest == 1 or not _B64URL.fullmatch(segment):
        return False
    if rest == 2:
        return _B64URL_INDEX[segment[-1]] & 0x0F == 0
    if rest == 3:
        return _B64URL_INDEX[segment[-1]] & 0x03 == 0
    return True


def _b64json(segment: str) -> Any:
    return orjson.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


class _IssuerKeys:
    """The verification keys of one issuer, by kid, with a rate-limited refresh."""

    def __init__(
        self,
        load: Callable[[], Mapping[str, Key]],
        refresh: Callable[[], bool],
        min_interval: float,
        *,
        allow_missing_kid: bool = False,
    ) -> None:
        self._allow_missing_kid = allow_missing_kid
        self._load = load
        self._refresh = refresh
        self._min_interval = min_interval
        self._last_refresh = time.monotonic()
        self._refreshing = threading.Lock()

    def get(self, kid: str | None) -> Key | None:
        keys = self._load()
        if kid is None:
            # Some IdPs omit kid when they have a single key; more than one is ambiguous.
            # The gateway's own tokens always carry one.
            if self._allow_missing_kid and len(keys) == 1:
                return next(iter(keys.values()))
            return None
        key = keys.get(kid)
        if key is not None or not self._may_refresh():
            return key
        return self._load().get(kid)

    def _may_refresh(self) -> bool:
        # Non-blocking: while one thread refreshes, the others fail fast rather than queue.
        if time.monotonic() - self._last_refresh < self._min_interval:
            return False
        if not self._refreshing.acquire(blocking=False):
            return False
        try:
            self._last_refresh = time.monotonic()
            return self._refresh()
        finally:
            self._refreshing.release()


def _import_jwks(data: Any, source: str) -> dict[str, Key]:
    """Public signature keys of a JWK Set, by kid (encryption and symmetric keys skipped)."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError(f"{source}: not a JWK Set")
    keys: dict[str, Key] = {}
    for jwk in data["keys"]:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig" or jwk.get("kty") == "oct":
            continue
        public = {k: v for k, v in jwk.items() if k not in {"d", "p", "q", "dp", "dq", "qi"}}
        try:
            key = import_key(public)
        except (JoseError, ValueError, TypeError) as exc:
            log.warning("auth.jwks_key_skipped", extra={"source": source, "error": str(exc)})
            continue
        keys[str(jwk.get("kid") or key.thumbprint())] = key
    return keys


class _RemoteJWKS:
    """A jwks_uri: fetched at start and on an unknown kid (rate-limited by the caller)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.keys: dict[str, Key] = {}

    def fetch(self) -> bool:
        try:
            response = requests.get(self.uri, timeout=JWKS_FETCH_TIMEOUT)
            response.raise_for_status()
            keys = _import_jwks(response.json(), self.uri)
        except (requests.RequestException, ValueError) as exc:
            log.warning("auth.jwks_fetch_failed", extra={"uri": self.uri, "error": str(exc)})
            return False
        changed = keys.keys() != self.keys.keys()
        self.keys = keys  # one assignment: readers see the old or the new dict, never a mix
        return changed


@dataclass(frozen=True)
class _Issuer:
    name: str
    algorithms: frozenset[str]
    algorithm_models: dict[str, JWSAlgModel]
    registry: JWTClaimsRegistry
    keys: _IssuerKeys
    scope_claim: str
    client_id_claims: tuple[str, ...]
    require_at_jwt: bool


class TokenVerifier:
    """Verifies bearer access tokens and returns the :class:`Principal` they carry."""

    def __init__(self, issuers: list[_Issuer], realm: str = "loangate") -> None:
        self._issuers = {issuer.name: issuer for issuer in issuers}
        self.realm = realm
        #: Tokens already verified, so a client's next requests skip the signature check:
        #: token -> (principal, valid until (epoch s), issuer, kid, key it was verified with).
        #: A hit still needs its key to be the issuer's current key for its kid (a rotated-out
        #: or replaced key ends it) and its expiry not passed.
        self._verified: dict[str, tuple[Principal, float, _Issuer, str | None, Key]] = {}

    @classmethod
    def from_settings(cls, settings: AuthSettings, keystore: KeyStore) -> TokenVerifier:
        """The gateway's own issuer (keys from ``keystore``) plus ``settings.trusted_issuers``."""
        own = _Issuer(
            name=settings.issuer,
            algorithms=frozenset({ALGORITHM}),
            algorithm_models=_algorithm_models(frozenset({ALGORITHM})),
            registry=_registry(settings.issuer, settings.audience, settings.leeway_seconds, True),
            keys=_IssuerKeys(
                lambda: keystore.verification_keys,
                keystore.refresh_if_changed,
                LOCAL_REFRESH_SECONDS,
            ),
            scope_claim="scope",
            client_id_claims=("sub",),
            require_at_jwt=True,
        )
        trusted = [_trusted_issuer(t, settings.leeway_seconds) for t in settings.trusted_issuers]
        return cls([own, *trusted])

    @property
    def issuers(self) -> list[str]:
        """The accepted ``iss`` values: the gateway's own first."""
        return list(self._issuers)

    def verify(self, token: str) -> Principal:
        """Verify ``token``; raises a 401 :class:`~gateway.errors.Problem` if it is not valid."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise invalid_token("The access token is empty or too long", realm=self.realm)
        hit = self._verified.get(token)
        if hit is not None:
            principal, valid_until, cached_issuer, cached_kid, cached_key = hit
            if time.time() < valid_until and cached_issuer.keys.get(cached_kid) is cached_key:
                return principal
            self._verified.pop(token, None)
        parts = token.split(".")
        if len(parts) != 3 or not all(_canonical_b64url(p) for p in parts):
            raise invalid_token("The access token is not a signed JWT", realm=self.realm)
        try:
            header = _b64json(parts[0])
            claims = _b64json(parts[1])  # unverified until the signature check below
        except (ValueError, binascii.Error, orjson.JSONDecodeError):
            raise invalid_token("The access token is malformed", realm=self.realm) from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise invalid_token("The access token is malformed", realm=self.realm)
        if "crit" in header or "b64" in header:
            # RFC 7515 §4.1.11: refuse critical extensions we do not implement (RFC 7797 ...).
            raise invalid_token("The token uses an unsupported JWS extension", realm=self.realm)

        iss = claims.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise invalid_token("The token issuer is not trusted", realm=self.realm)
        alg = header.get("alg")
        if alg not in issuer.algorithms:
            raise invalid_token("The token algorithm is not allowed", realm=self.realm)
        if issuer.require_at_jwt and str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
            raise invalid_token("The token is not an access token (typ)", realm=self.realm)
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise invalid_token("The access token is malformed", realm=self.realm)
        key = issuer.keys.get(kid)
        if key is None:
            raise invalid_token("The token signing key is unknown", realm=self.realm)
        key_alg = key.get("alg")
        if key_alg and key_alg != alg:
            raise invalid_token("The token algorithm is not allowed", realm=self.realm)

        # joserfc's JWS algorithm (what jwt.decode ends in) on the segments parsed above: its
        # generic compact parser would parse them again, at ~14 us a request.
        algorithm = issuer.algorithm_models[alg]
        try:
            algorithm.check_key(key)
            signature = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
            valid = algorithm.verify(f"{parts[0]}.{parts[1]}".encode(), signature, key)
        except (JoseError, ValueError, TypeError):
            valid = False
        if not valid:
            raise invalid_token("The token signature is invalid", realm=self.realm)
        try:
            issuer.registry.validate(claims)
        except ExpiredTokenError:
            raise invalid_token("The access token has expired", realm=self.realm) from None
        except ClaimError as exc:
            claim = getattr(exc, "claim", "") or "a claim"
            raise invalid_token(f"The token claim {claim} is invalid", realm=self.realm) from None

        client_id = next(
            (v for c in issuer.client_id_claims if isinstance(v := claims.get(c), str) and v),
            None,
        )
        if client_id is None:
            raise invalid_token("The token names no client", realm=self.realm)
        jti = claims.get("jti")
        principal = Principal(
            client_id=client_id,
            scopes=parse_scopes(claims.get(issuer.scope_claim)),
            issuer=issuer.name,
            token_id=jti if isinstance(jti, str) else None,
        )
        if len(self._verified) >= MAX_VERIFIED_TOKENS:
            self._verified.clear()  # rare: many clients at once; they are verified afresh
        exp = claims["exp"]  # essential: validated above
        self._verified[token] = (principal, float(exp), issuer, kid, key)
        return principal


def _algorithm_models(names: frozenset[str]) -> dict[str, JWSAlgModel]:
    registry = JWSRegistry(algorithms=sorted(names))
    return {name: registry.get_alg(name) for name in names}


def _registry(issuer: str, audience: str, leeway: int, own: bool) -> JWTClaimsRegistry:
    options: dict[str, Any] = {
        "iss": {"essential": True, "value": issuer},
        "aud": {"essential": True, "value": audience},
        "exp": {"essential": True},
    }
    if own:
        # RFC 9068 §2.2: these are required in a JWT access token.
        options.update(iat={"essential": True}, jti={"essential": True}, sub={"essential": True})
    return JWTClaimsRegistry(leeway=leeway, **options)


def _trusted_issuer(t: TrustedIssuerSettings, leeway: int) -> _Issuer:
    if t.jwks_file is not None:
        try:
            static = _import_jwks(orjson.loads(Path(t.jwks_file).read_bytes()), str(t.jwks_file))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"auth.trusted_issuers[{t.issuer}].jwks_file: {exc}") from None
        keys = _IssuerKeys(lambda: static, lambda: False, float("inf"), allow_missing_kid=True)
    else:
        remote = _RemoteJWKS(str(t.jwks_uri))
        remote.fetch()  # at start; a failure is logged and retried on the next unknown kid
        keys = _IssuerKeys(
            lambda: remote.keys, remote.fetch, JWKS_REFRESH_SECONDS, allow_missing_kid=True
        )
    return _Issuer(
        name=t.issuer,
        algorithms=t.algorithms,
        algorithm_models=_algorithm_models(t.algorithms),
        registry=_registry(t.issuer, t.audience, leeway, False),
        keys=keys,
        scope_claim=t.scope_claim,
        client_id_claims=(t.client_id_claim,) if t.client_id_claim else DEFAULT_CLIENT_ID_CLAIMS,
        require_at_jwt=False,
    )
