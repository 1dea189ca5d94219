"""Cryptography of personal data: master keys, wrapped data keys, value envelopes.

Two layers (envelope encryption):

- a *master key* (key-encryption key, 256-bit, with an id) comes from the environment, a
  file, or, for the embedded default only, a file generated in the instance folder;
- each applicant (subject) gets a random 256-bit *data key*, stored wrapped by the active
  master key. Personal values are encrypted with AES-256-GCM under the data key.

A value is stored as the envelope ``{"$pii": "v1:<key id>:<base64url(nonce||ciphertext)>"}``;
the associated data binds it to its decision id and JSON pointer, so a ciphertext copied
into another record or another field fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: The member naming an encrypted value, and the envelope format's version.
ENVELOPE = "$pii"
VERSION = "v1"
_NONCE = 12
_KEY_BYTES = 32


class DecryptionError(Exception):
    """A ciphertext that cannot be decrypted: tampered, moved, or under another key."""


def b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def b64d(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise DecryptionError("not base64url") from exc


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return secrets.token_bytes(_KEY_BYTES)


def parse_key(text: str, where: str) -> bytes:
    """A 256-bit key from its base64url text; ``ValueError`` naming ``where`` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"{where}: not base64url") from None
    if len(raw) != _KEY_BYTES:
        raise ValueError(f"{where}: a key must be 32 bytes (base64url), got {len(raw)}")
    return raw


def read_or_create_key_file(path: Path) -> bytes:
    """The key in ``path``, generated (mode 0600) if the file does not exist yet.

    Created under a temporary name and linked into place, so concurrent workers starting
    together end up with one key and never read a half-written file.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(b64e(new_key()) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won: use its key
        finally:
            tmp.unlink()
    return parse_key(path.read_text(encoding="ascii"), str(path))


@dataclass(frozen=True)
class MasterKeys:
    """The master keys by id; ``active`` wraps new data keys, the others only unwrap."""

    active: str
    keys: Mapping[str, bytes]

    def wrap(self, data_key: bytes, key_id: str, subject_ref: str) -> tuple[str, str]:
        """``(master key id, wrapped data key)`` under the active master key."""
        nonce = secrets.token_bytes(_NONCE)
        aad = f"subject-key|{key_id}|{subject_ref}".encode()
        sealed = AESGCM(self.keys[self.active]).encrypt(nonce, data_key, aad)
        return self.active, b64e(nonce + sealed)

    def unwrap(self, master_key_id: str, wrapped: str, key_id: str, subject_ref: str) -> bytes:
        """The data key; :class:`DecryptionError` if its master key is gone or it was altered."""
        master = self.keys.get(master_key_id)
        if master is None:
            raise DecryptionError(f"master key {master_key_id!r} is not configured")
        raw = b64d(wrapped)
        aad = f"subject-key|{key_id}|{subject_ref}".encode()
        try:
            return AESGCM(master).decrypt(raw[:_NONCE], raw[_NONCE:], aad)
        except InvalidTag:
            raise DecryptionError(f"data key {key_id} does not unwrap") from None


def subject_ref(hash_key: bytes, subject_id: str) -> str:
    """The keyed hash (HMAC-SHA256, hex) that stands for a subject id in the database."""
    return hmac.new(hash_key, subject_id.encode(), hashlib.sha256).hexdigest()


def _aad(decision_id: str, pointer: str) -> bytes:
    return f"{VERSION}|{decision_id}|{pointer}".encode()


def seal(
    value: Any, key_id: str, data_key: bytes, decision_id: str, pointer: str
) -> dict[str, str]:
    """The envelope of ``value`` (any JSON value) at ``pointer`` of decision ``decision_id``."""
    nonce = secrets.token_bytes(_NONCE)
    sealed = AESGCM(data_key).encrypt(nonce, orjson.dumps(value), _aad(decision_id, pointer))
    return {ENVELOPE: f"{VERSION}:{key_id}:{b64e(nonce + sealed)}"}


def is_envelope(value: Any) -> bool:
    return type(value) is dict and len(value) == 1 and ENVELOPE in value


def envelope_key_id(envelope: Mapping[str, Any]) -> str:
    """The data key id an envelope was sealed under; :class:`DecryptionError` if malformed."""
    text = envelope.get(ENVELOPE)
    if not isinstance(text, str):
        raise DecryptionError("malformed envelope")
    parts = text.split(":")
    if len(parts) != 3 or parts[0] != VERSION or not parts[1]:
        raise DecryptionError("malformed envelope")
    return parts[1]


def open_envelope(
    envelope: Mapping[str, Any], data_key: bytes, decision_id: str, pointer: str
) -> Any:
    """The value sealed in ``envelope`` at ``pointer`` of ``decision_id``.

    Raises :class:`DecryptionError` if the ciphertext was altered, copied from another
    decision or field, or sealed under another key.
    """
    envelope_key_id(envelope)
    raw = b64d(str(envelope[ENVELOPE]).split(":", 2)[2])
    if len(raw) <= _NONCE:
        raise DecryptionError("ciphertext too short")
    try:
        plain = AESGCM(data_key).decrypt(raw[:_NONCE], raw[_NONCE:], _aad(decision_id, pointer))
    except InvalidTag:
        raise DecryptionError(
            f"the value at {pointer} of decision {decision_id} does not decrypt "
            "(altered, moved from another record, or under another key)"
        ) from None
    return orjson.loads(plain)
