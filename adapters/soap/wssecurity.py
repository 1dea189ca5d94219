"""WS-Security UsernameToken: client id and secret for SOAP stacks that cannot do OAuth.

The ``Username`` is an OAuth client id, so the token maps onto the same client registry and
scopes as a bearer token. Two forms:

- **PasswordText**: the client secret itself, checked against the stored salted hash. Accepted
  only over TLS or from loopback (``request.is_secure`` honours ``server.trusted_proxies``),
  since anyone on the path could read it.
- **PasswordDigest**: ``Base64(SHA-1(nonce + created + secret))``. Verifying it needs the
  plain secret, which the gateway otherwise never keeps: a client opts in
  (:func:`enable_password_digest`), and its secret is then stored encrypted (Fernet) with a key
  in the instance folder (``<instance>/keys/wsse-digest.key``, mode 0600). Whoever holds both
  the database and that key can recover those secrets: keep the key off the database host's
  backups, and prefer OAuth or PasswordText over TLS where the caller can.

Either form may carry ``Nonce`` and ``wsu:Created`` (PasswordDigest must): ``Created`` must be
within the allowed clock skew (``auth.leeway_seconds``) of the gateway's clock, and a nonce is
accepted once per client. Nonces are kept in the ``wsse_nonces`` table, shared by every worker
and host, until their ``Created`` falls out of the window (then a replay is refused as expired
anyway) and purged after that.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken
from lxml import etree
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from adapters.soap.faults import SoapFault, client_fault
from gateway.auth.clients import get_client
from gateway.auth.tokens import Principal
from gateway.tables import WsseDigestSecret, WsseNonce

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
PASSWORD_TEXT = f"{_PROFILE}#PasswordText"
PASSWORD_DIGEST = f"{_PROFILE}#PasswordDigest"
BASE64_BINARY = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)
MAX_NONCE_BYTES = 128
PURGE_EVERY_SECONDS = 60.0
#: The issuer recorded on principals authenticated by a UsernameToken.
ISSUER = "wsse"


def wsse_fault(local: str, message: str, code: str, status: int = 401) -> SoapFault:
    """A Client/Sender fault with a WS-Security fault code (SOAP 1.2 subcode)."""
    return client_fault(message, code=code, status=status, subcode=(WSSE, local))


def failed_authentication() -> SoapFault:
    # One message for an unknown client, a disabled one and a wrong secret: no oracle.
    return wsse_fault(
        "FailedAuthentication", "The security token could not be authenticated.", "unauthorized"
    )


@dataclass(frozen=True)
class UsernameToken:
    """A parsed ``wsse:UsernameToken``. The password is kept out of ``repr``."""

    username: str
    password: str = field(repr=False)
    digest: bool
    nonce: bytes | None
    created: str | None  # exactly as sent: it is part of the digest


def find_token(header: tuple[etree._Element, ...]) -> UsernameToken | None:
    """The UsernameToken of a ``wsse:Security`` header entry, ``None`` without one."""
    securities = [e for e in header if e.tag == f"{{{WSSE}}}Security"]
    if not securities:
        return None
    tokens = [t for s in securities for t in s.iter(f"{{{WSSE}}}UsernameToken")]
    if len(securities) > 1 or len(tokens) != 1:
        raise _invalid("Send one wsse:Security header with one UsernameToken.")
    token = tokens[0]
    username = (token.findtext(f"{{{WSSE}}}Username") or "").strip()
    password_el = token.find(f"{{{WSSE}}}Password")
    if not username or password_el is None or not password_el.text:
        raise _invalid("The UsernameToken needs a Username and a Password.")
    kind = password_el.get("Type", PASSWORD_TEXT)
    if kind not in (PASSWORD_TEXT, PASSWORD_DIGEST):
        raise wsse_fault(
            "UnsupportedSecurityToken",
            "Password Type must be PasswordText or PasswordDigest.",
            "unsupported-security-token",
        )
    nonce_el = token.find(f"{{{WSSE}}}Nonce")
    nonce = None
    if nonce_el is not None:
        if nonce_el.get("EncodingType", BASE64_BINARY) != BASE64_BINARY:
            raise _invalid("The Nonce must be Base64Binary.")
        try:
            nonce = base64.b64decode((nonce_el.text or "").strip(), validate=True)
        except (binascii.Error, ValueError):
            raise _invalid("The Nonce is not valid base64.") from None
        if not 0 < len(nonce) <= MAX_NONCE_BYTES:
            raise _invalid(f"The Nonce must be 1 to {MAX_NONCE_BYTES} bytes.")
    created = token.findtext(f"{{{WSU}}}Created")
    created = created.strip() if created is not None else None
    digest = kind == PASSWORD_DIGEST
    if digest and (nonce is None or not created):
        raise _invalid("A PasswordDigest needs a Nonce and a wsu:Created.")
    return UsernameToken(username, password_el.text.strip(), digest, nonce, created)


def _invalid(message: str) -> SoapFault:
    return wsse_fault("InvalidSecurityToken", message, "invalid-security-token", 400)


def password_digest(nonce: bytes, created: str, secret: str) -> str:
    """``Base64(SHA-1(nonce + created + secret))``, as the UsernameToken profile defines it."""
    raw = hashlib.sha1(nonce + created.encode() + secret.encode()).digest()
    return base64.b64encode(raw).decode()


def parse_created(text: str) -> datetime:
    """A ``wsu:Created`` timestamp (ISO 8601 with a zone), as an aware datetime."""
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid("wsu:Created is not an ISO 8601 date-time.") from None
    if stamp.tzinfo is None:
        raise _invalid("wsu:Created must carry a time zone (e.g. Z).")
    return stamp


# --- digest secrets ------------------------------------------------------------------------


def digest_key_file(instance_path: Path) -> Path:
    """Where the key encrypting PasswordDigest secrets lives."""
    return instance_path / "keys" / "wsse-digest.key"


def _fernet(key_file: Path, create: bool = False) -> Fernet | None:
    if not key_file.exists():
        if not create:
            return None
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key())
    return Fernet(key_file.read_bytes().strip())


def enable_password_digest(engine: Engine, key_file: Path, client_id: str, secret: str) -> None:
    """Let ``client_id`` use PasswordDigest: keep its secret, encrypted.

    ``secret`` must be the client's current secret (checked against the stored hash);
    ``ValueError`` otherwise.
    """
    client = get_client(engine, client_id)
    if client is None or not client.check_secret(secret):
        raise ValueError("unknown client or wrong secret")
    fernet = _fernet(key_file, create=True)
    assert fernet is not None
    token = fernet.encrypt(secret.encode()).decode()
    with engine.begin() as conn:
        conn.execute(sa.delete(WsseDigestSecret).where(WsseDigestSecret.client_id == client_id))
        conn.execute(
            sa.insert(WsseDigestSecret).values(
                client_id=client_id, secret_encrypted=token, created_at=datetime.now(UTC)
            )
        )


def disable_password_digest(engine: Engine, client_id: str) -> bool:
    """Forget ``client_id``'s encrypted secret; False if it had none."""
    with engine.begin() as conn:
        result = conn.execute(
            sa.delete(WsseDigestSecret).where(WsseDigestSecret.client_id == client_id)
        )
    return bool(result.rowcount)


# --- verification --------------------------------------------------------------------------


class WsSecurity:
    """Authenticates UsernameTokens against the client registry; refuses replays."""

    def __init__(self, engine: Engine, window_seconds: int, key_file: Path) -> None:
        self.engine = engine
        self.window = timedelta(seconds=window_seconds)
        self.key_file = key_file
        self._last_purge = 0.0

    def authenticate(
        self, token: UsernameToken, *, secure: bool, now: datetime | None = None
    ) -> Principal:
        """The principal of ``token``; a :class:`SoapFault` when it is refused."""
        now = now or datetime.now(UTC)
        created = parse_created(token.created) if token.created else None
        if created is not None and abs(now - created) > self.window:
            raise wsse_fault(
                "MessageExpired",
                "wsu:Created is outside the allowed clock skew; send a fresh token.",
                "message-expired",
            )
        if not token.digest and not secure:
            raise wsse_fault(
                "FailedAuthentication",
                "PasswordText is accepted only over TLS; use PasswordDigest or HTTPS.",
                "insecure-transport",
                403,
            )
        try:
            client = get_client(self.engine, token.username)
        except SQLAlchemyError:
            raise _unavailable() from None
        if client is None or client.disabled:
            raise failed_authentication()
        if token.digest:
            secret = self._digest_secret(client.client_id)
            assert token.nonce is not None and token.created is not None
            ok = secret is not None and hmac.compare_digest(
                password_digest(token.nonce, token.created, secret), token.password
            )
        else:
            ok = client.check_secret(token.password)
        if not ok:
            raise failed_authentication()
        if token.nonce is not None:
            self._remember_nonce(client.client_id, token.nonce, created or now, now)
        return Principal(client.client_id, client.scopes, ISSUER, None)

    def _digest_secret(self, client_id: str) -> str | None:
        fernet = _fernet(self.key_file)
        if fernet is None:
            return None
        try:
            with self.engine.connect() as conn:
                stored = conn.execute(
                    sa.select(WsseDigestSecret.secret_encrypted).where(
                        WsseDigestSecret.client_id == client_id
                    )
                ).scalar_one_or_none()
        except SQLAlchemyError:
            raise _unavailable() from None
        if stored is None:
            return None
        try:
            return fernet.decrypt(stored.encode()).decode()
        except InvalidToken:
            return None  # encrypted under another key: the client must opt in again

    def _remember_nonce(
        self, client_id: str, nonce: bytes, created: datetime, now: datetime
    ) -> None:
        """Record the nonce; a replay (already recorded) is refused."""
        row = {
            "client_id": client_id,
            "nonce_sha256": hashlib.sha256(nonce).hexdigest(),
            # After this its Created is out of the window: a replay fails as expired.
            "expires_at": created + self.window + timedelta(seconds=1),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(WsseNonce).values(**row))
        except IntegrityError:
            raise wsse_fault(
                "InvalidSecurity",
                "This nonce was already used: send a fresh one.",
                "replayed-nonce",
            ) from None
        except SQLAlchemyError:
            raise _unavailable() from None
        if time.monotonic() - self._last_purge > PURGE_EVERY_SECONDS:
            self._last_purge = time.monotonic()
            self.purge(now)

    def purge(self, now: datetime | None = None) -> int:
        """Delete nonces whose window has passed; returns how many."""
        cutoff = now or datetime.now(UTC)
        with self.engine.begin() as conn:
            result = conn.execute(sa.delete(WsseNonce).where(WsseNonce.expires_at < cutoff))
        return int(result.rowcount or 0)


def _unavailable() -> SoapFault:
    fault = SoapFault(
        False,
        "The security token could not be checked now. Retry later.",
        "auth-unavailable",
        503,
        retry_after=2,
    )
    return fault
