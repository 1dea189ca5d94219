"""Sortable decision ids (ULID: 48-bit millisecond time + 80 random bits, Crockford base32).

Ids sort by creation time, so the log's primary key doubles as its time order and a
pagination cursor. Within one process ids are strictly increasing, even in the same
millisecond.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last_ms = -1
_last_rand = 0


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_id() -> str:
    """A new 26-character ULID."""
    global _last_ms, _last_rand
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _last_rand += 1
        else:
            _last_rand = int.from_bytes(os.urandom(10), "big") >> 1  # headroom to increment
        _last_ms = ms
        rand = _last_rand
    return _encode(ms, 10) + _encode(rand, 16)


def is_valid(value: str) -> bool:
    """True if ``value`` has the shape of an id (cheap check before a lookup)."""
    return len(value) == 26 and all(c in _ALPHABET for c in value)
