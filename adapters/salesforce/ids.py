"""Salesforce record Ids: 15 case-sensitive characters, or 18 with a case-safe suffix.

The 18-character form adds three characters that encode which of the first 15 are upper case,
so an Id survives systems that ignore case. Ids are compared here in that 18-character form.
"""

from __future__ import annotations

import re

_ID = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")
_SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
#: The key prefix of organization Ids.
ORGANIZATION_PREFIX = "00D"


def suffix(id15: str) -> str:
    """The three-character case-safe suffix of a 15-character Id."""
    out = []
    for start in (0, 5, 10):
        bits = sum(1 << i for i, c in enumerate(id15[start : start + 5]) if "A" <= c <= "Z")
        out.append(_SUFFIX_CHARS[bits])
    return "".join(out)


def to18(value: str) -> str:
    """``value`` as an 18-character Id; :class:`ValueError` if it is not a Salesforce Id
    (including an 18-character Id whose suffix does not match its first 15 characters)."""
    if not isinstance(value, str) or not _ID.match(value):
        raise ValueError("not a Salesforce Id (15 or 18 letters and digits)")
    head, tail = value[:15], value[15:]
    expected = suffix(head)
    if tail and tail.upper() != expected:
        raise ValueError("the last three characters do not match the first fifteen")
    return head + expected


def organization_id(value: str) -> str:
    """``value`` as an 18-character organization Id (``00D`` ...); :class:`ValueError` else."""
    full = to18(value)
    if not full.startswith(ORGANIZATION_PREFIX):
        raise ValueError(f"an organization Id begins with {ORGANIZATION_PREFIX}")
    return full
