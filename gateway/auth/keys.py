"""Signing keys of the gateway's authorization server.

Keys are RSA 2048 (RS256: the cheapest JWT to verify on the hot path). They come from

* a directory (default ``<instance>/keys``): one private PEM per key, ``<kid>.pem``, mode 0600,
  plus a file ``ACTIVE`` naming the kid that signs. The first start generates a key. Every
  key in the directory verifies and is published in the JWKS; :meth:`KeyStore.rotate` adds a
  new active key and keeps the old ones, :meth:`KeyStore.retire` moves one to ``retired/``
  (no longer verifies, no longer published);
* or the configuration (``auth.signing_keys``): the first entry signs, the others verify.
  Rotation is then an edit of the configuration.

Several gateway processes share one directory: creation, rotation and retirement hold an
exclusive ``flock``, and every process picks up a change made by another one through
:meth:`KeyStore.refresh_if_changed` (a ``stat`` of ``ACTIVE``), which the token endpoint calls
before signing and the verifier calls when a token names a kid it does not know.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from joserfc.jwk import KeySet, RSAKey

from gateway.auth.config import AuthSettings, SigningKeySetting
from gateway.errors import ConfigError

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
KEY_SIZE = 2048
ACTIVE_FILE = "ACTIVE"
RETIRED_DIR = "retired"
_KID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def new_kid() -> str:
    """A fresh key id, ``YYYYMMDD-<8 hex>``: readable in logs, unique without coordination."""
    return f"{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(4)}"


def _import_private(pem: bytes, kid: str) -> RSAKey:
    key = RSAKey.import_key(pem, parameters={"kid": kid, "alg": ALGORITHM, "use": "sig"})
    if not key.is_private:
        raise ValueError(f"signing key {kid!r} is not a private key")
    if key.get_op_key("sign").key_size < KEY_SIZE:
        raise ValueError(f"signing key {kid!r} is shorter than {KEY_SIZE} bits")
    return key


@dataclass(frozen=True)
class _Snapshot:
    """An immutable view of the keys; replaced as a whole so readers need no lock."""

    active: RSAKey
    signing_keyset: KeySet
    public: dict[str, RSAKey]
    jwks_json: bytes


class KeyStore:
    """The gateway's signing keys: one active key signs, all non-retired keys verify."""

    def __init__(
        self, keys: dict[str, RSAKey], active_kid: str, directory: Path | None = None
    ) -> None:
        self._directory = directory
        self._lock = threading.Lock()
        self._active_mtime: int | None = None
        self._snapshot = self._build(keys, active_kid)

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> KeyStore:
        """Keys from ``auth.signing_keys`` if given, else from ``settings.keys_dir``."""
        if settings.signing_keys:
            return cls.from_config(settings.signing_keys)
        return cls.open(settings.keys_dir)

    @classmethod
    def from_config(cls, entries: tuple[SigningKeySetting, ...]) -> KeyStore:
        """Keys given as PEMs in config; the first one signs."""
        keys: dict[str, RSAKey] = {}
        for entry in entries:
            if not _KID_RE.match(entry.kid):
                raise ConfigError(f"auth.signing_keys: invalid kid {entry.kid!r}")
            try:
                pem = entry.pem.encode() if entry.pem else Path(entry.pem_file or "").read_bytes()
                keys[entry.kid] = _import_private(pem, entry.kid)
            except (OSError, ValueError) as exc:
                # The message names the kid only: never echo key material.
                raise ConfigError(f"auth.signing_keys[{entry.kid}]: {exc}") from None
        return cls(keys, entries[0].kid)

    @classmethod
    def open(cls, directory: Path) -> KeyStore:
        """Keys from ``directory``; generates the first key on first run."""
        directory = Path(directory)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _flock(directory):
            pems = sorted(p.stem for p in directory.glob("*.pem") if _KID_RE.match(p.stem))
            if not pems:
                kid = new_kid()
                _write_key(directory, kid, RSAKey.generate_key(KEY_SIZE, private=True))
                _write_active(directory, kid)
                log.info("auth.key_generated", extra={"kid": kid})
            elif _active_kid(directory) is None:
                # PEMs placed by hand without ACTIVE: the last kid (by name) signs.
                _write_active(directory, pems[-1])
            keys, active = _load_directory(directory)
        store = cls(keys, active, directory)
        store._active_mtime = _mtime(directory / ACTIVE_FILE)
        return store

    # -- reading (lock-free: one attribute read of an immutable snapshot) ---------------

    @property
    def active(self) -> RSAKey:
        """The private key that signs new tokens."""
        return self._snapshot.active

    @property
    def active_kid(self) -> str:
        """The kid of the active key (written in the header of new tokens)."""
        return str(self._snapshot.active.kid)

    @property
    def signing_keyset(self) -> KeySet:
        """A KeySet of the active key only: joserfc picks it and writes its kid in the header."""
        return self._snapshot.signing_keyset

    @property
    def verification_keys(self) -> dict[str, RSAKey]:
        """Public keys by kid, all that currently verify (do not mutate)."""
        return self._snapshot.public

    @property
    def kids(self) -> list[str]:
        """The kids that verify, sorted."""
        return sorted(self._snapshot.public)

    def jwks(self) -> dict[str, list[dict[str, str | list[str]]]]:
        """The public JWK Set (RFC 7517): public members only."""
        return {"keys": [k.as_dict(private=False) for k in self._snapshot.public.values()]}

    def jwks_json(self) -> bytes:
        """:meth:`jwks` serialised once per change of keys."""
        return self._snapshot.jwks_json

    # -- changing ------------------------------------------------------------------------

    def rotate(self) -> str:
        """Generate a new active key; older keys keep verifying. Returns the new kid."""
        directory = self._require_directory("rotate")
        kid = new_kid()
        key = RSAKey.generate_key(KEY_SIZE, private=True)
        with self._lock, _flock(directory):
            _write_key(directory, kid, key)
            _write_active(directory, kid)
            self._reload_locked(directory)
        log.info("auth.key_rotated", extra={"kid": kid})
        return kid

    def retire(self, kid: str) -> None:
        """Stop verifying with and publishing ``kid`` (moved to ``retired/``)."""
        directory = self._require_directory("retire")
        with self._lock, _flock(directory):
            if kid == _active_kid(directory):
                raise ValueError("cannot retire the active key; rotate first")
            src = directory / f"{kid}.pem"
            if not _KID_RE.match(kid) or not src.exists():
                raise KeyError(kid)
            (directory / RETIRED_DIR).mkdir(mode=0o700, exist_ok=True)
            src.replace(directory / RETIRED_DIR / src.name)
            # Touch ACTIVE so other processes notice the change through refresh_if_changed().
            _write_active(directory, self.active_kid)
            self._reload_locked(directory)
        log.info("auth.key_retired", extra={"kid": kid})

    def refresh_if_changed(self) -> bool:
        """Reload the directory if another process rotated or retired a key (one ``stat``)."""
        directory = self._directory
        if directory is None or _mtime(directory / ACTIVE_FILE) == self._active_mtime:
            return False
        with self._lock:
            self._reload_locked(directory)
        return True

    # -- internals -----------------------------------------------------------------------

    def _require_directory(self, what: str) -> Path:
        if self._directory is None:
            raise RuntimeError(f"keys come from auth.signing_keys; {what} by editing the config")
        return self._directory

    def _reload_locked(self, directory: Path) -> None:
        mtime = _mtime(directory / ACTIVE_FILE)
        keys, active = _load_directory(directory)
        self._snapshot = self._build(keys, active)
        self._active_mtime = mtime

    @staticmethod
    def _build(keys: dict[str, RSAKey], active_kid: str) -> _Snapshot:
        if active_kid not in keys:
            raise ConfigError(f"auth: active signing key {active_kid!r} not found")
        public = {
            kid: RSAKey.import_key(key.as_dict(private=False), parameters={"kid": kid})
            for kid, key in keys.items()
        }
        active = keys[active_kid]
        jwks = {"keys": [k.as_dict(private=False) for k in public.values()]}
        return _Snapshot(active, KeySet([active]), public, orjson.dumps(jwks))


@contextlib.contextmanager
def _flock(directory: Path) -> Iterator[None]:
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _active_kid(directory: Path) -> str | None:
    try:
        kid = (directory / ACTIVE_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return kid if _KID_RE.match(kid) else None


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # O_EXCL + explicit mode: the private key is never readable by others, not even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def _write_key(directory: Path, kid: str, key: RSAKey) -> None:
    _write_atomic(directory / f"{kid}.pem", key.as_pem(private=True), 0o600)


def _write_active(directory: Path, kid: str) -> None:
    _write_atomic(directory / ACTIVE_FILE, kid.encode() + b"\n", 0o600)
    # A rewrite within the same mtime tick would go unnoticed by other processes.
    now = time.time_ns()
    os.utime(directory / ACTIVE_FILE, ns=(now, now))


def _load_directory(directory: Path) -> tuple[dict[str, RSAKey], str]:
    keys: dict[str, RSAKey] = {}
    for path in sorted(directory.glob("*.pem")):
        kid = path.stem
        if not _KID_RE.match(kid):
            continue
        if path.stat().st_mode & 0o077:
            log.warning("auth.key_file_permissions", extra={"path": str(path)})
        try:
            keys[kid] = _import_private(path.read_bytes(), kid)
        except ValueError as exc:
            raise ConfigError(f"auth.keys_dir: cannot load {path.name}: {exc}") from None
    active = _active_kid(directory)
    if active is None or active not in keys:
        raise ConfigError(f"auth.keys_dir: {directory / ACTIVE_FILE} names no key in the directory")
    return keys, active
