"""Personal values in decision documents: sealed before storage, opened or masked on reading.

:func:`protect` is applied once, to the document about to be serialised and logged (the
REST/SOAP/ERP path and batch alike). It replaces every value of a ``personal`` field with
an envelope (:mod:`gateway.personal.crypto`) wherever the document holds one:

- ``application.<field>`` (what the caller sent) and ``features.<field>`` (after validation),
- ``imputations[i].value`` and ``enrichments[i].value`` whose ``field`` is personal.

Contributions and reason codes stay in clear: they are the model's output and the
statement of reasons the lender must keep, not the applicant's values.

:func:`reveal` turns a stored document into what a reader may see: envelopes opened for a
caller with ``pii:read`` (``{"$erased": true}`` once the subject was erased), masked for
any other caller, who also sees ``protected`` fields masked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog

from gateway.personal.crypto import (
    DecryptionError,
    envelope_key_id,
    is_envelope,
    open_envelope,
    seal,
)

log = structlog.get_logger(__name__)

#: What a reader without ``pii:read`` sees in place of a personal or protected value.
MASKED: dict[str, bool] = {"$masked": True}
#: What a reader sees in place of a personal value whose subject was erased.
ERASED: dict[str, bool] = {"$erased": True}
#: A value that should decrypt and does not (altered, moved, or its master key missing).
UNREADABLE: dict[str, bool] = {"$unreadable": True}

#: Document members holding one value per field name.
FIELD_MAPS = ("application", "features")
#: Document members holding ``{"field": …, "value": …}`` items.
FIELD_LISTS = ("imputations", "enrichments")

#: Where a document names its subject and data key (absent when it holds no personal value).
MEMBER = "personal_data"


def _escape(name: str) -> str:
    """A field name as a JSON Pointer token (RFC 6901)."""
    return name.replace("~", "~0").replace("/", "~1")


def locations(document: Mapping[str, Any], fields: frozenset[str]) -> list[tuple[str, str, Any]]:
    """``(member, key, pointer)`` of every value of ``fields`` in ``document``.

    ``key`` is the field name for a map member and the item's index for a list member.
    Missing values (``None``) are no personal data and are left out.
    """
    found: list[tuple[str, str, Any]] = []
    for member in FIELD_MAPS:
        values = document.get(member)
        if isinstance(values, dict):
            for name in fields.intersection(values):
                if values[name] is not None:
                    found.append((member, name, f"/{member}/{_escape(name)}"))
    for member in FIELD_LISTS:
        items = document.get(member)
        if isinstance(items, list):
            for i, item in enumerate(items):
                if (
                    isinstance(item, dict)
                    and item.get("field") in fields
                    and item.get("value") is not None
                ):
                    found.append((member, str(i), f"/{member}/{i}/value"))
    return found


def _replace(
    document: dict[str, Any], where: Iterable[tuple[str, str, Any]], new: Callable[..., Any]
) -> dict[str, Any]:
    """A copy of ``document`` with the value at each location replaced by ``new(old, ptr)``.

    Only the members touched are copied; the input document is left as it was.
    """
    out = dict(document)
    copied: set[str] = set()
    for member, key, pointer in where:
        if member not in copied:
            out[member] = (
                dict(out[member]) if member in FIELD_MAPS else [dict(i) for i in out[member]]
            )
            copied.add(member)
        if member in FIELD_MAPS:
            out[member][key] = new(out[member][key], pointer)
        else:
            item = out[member][int(key)]
            item["value"] = new(item["value"], pointer)
    return out


def protect(
    document: dict[str, Any],
    personal: frozenset[str],
    key_for: Callable[[str], tuple[str, str, bytes]],
    subject_id: str,
) -> dict[str, Any]:
    """``document`` with every value of the ``personal`` fields sealed (a new dict).

    ``key_for(subject_id)`` gives ``(subject ref, key id, data key)``; it is called only
    when the document holds a personal value, so a record without one needs no key.
    """
    where = locations(document, personal)
    if not where:
        return document
    ref, key_id, data_key = key_for(subject_id)
    decision_id = document["decision_id"]
    out = _replace(
        document, where, lambda value, ptr: seal(value, key_id, data_key, decision_id, ptr)
    )
    out[MEMBER] = {"subject": ref, "key": key_id}
    return out


def key_ids(document: Mapping[str, Any]) -> set[str]:
    """The data key ids the envelopes of ``document`` were sealed under."""
    found: set[str] = set()
    meta = document.get(MEMBER)
    if isinstance(meta, dict) and isinstance(meta.get("key"), str):
        found.add(meta["key"])
    return found


def reveal(
    document: dict[str, Any],
    *,
    can_read: bool,
    protected: frozenset[str],
    data_keys: Mapping[str, bytes | None],
) -> dict[str, Any]:
    """What a reader sees of a stored ``document`` (a new dict; the input is unchanged).

    ``can_read`` (the ``pii:read`` scope): envelopes are opened with ``data_keys`` (key id
    to data key, ``None`` for a destroyed one) and protected values shown; otherwise both
    are masked.
    """
    decision_id = str(document.get("decision_id"))

    def opened(value: Any, pointer: str) -> Any:
        if not is_envelope(value):
            return value
        if not can_read:
            return dict(MASKED)
        try:
            data_key = data_keys.get(envelope_key_id(value))
            if data_key is None:
                return dict(ERASED)
            return open_envelope(value, data_key, decision_id, pointer)
        except DecryptionError as exc:
            log.warning("personal_value_unreadable", decision_id=decision_id, reason=str(exc))
            return dict(UNREADABLE)

    # Envelopes can only be where protect() puts them: a sealed field's value in the
    # members below. Any field may hold one (the classification may have changed since).
    sealed = [
        loc for loc in locations(document, _all_fields(document)) if _is_sealed(document, loc)
    ]
    out = _replace(document, sealed, opened) if sealed else dict(document)
    if not can_read and protected:
        out = _replace(out, locations(out, protected), lambda _v, _p: dict(MASKED))
    if not can_read and MEMBER in out:  # the pseudonym would link an applicant's decisions
        out[MEMBER] = dict(MASKED)
    return out


def _all_fields(document: Mapping[str, Any]) -> frozenset[str]:
    names: set[str] = set()
    for member in FIELD_MAPS:
        values = document.get(member)
        if isinstance(values, dict):
            names.update(values)
    for member in FIELD_LISTS:
        items = document.get(member)
        if isinstance(items, list):
            names.update(str(i.get("field")) for i in items if isinstance(i, dict))
    return frozenset(names)


def _is_sealed(document: Mapping[str, Any], location: tuple[str, str, Any]) -> bool:
    member, key, _ = location
    if member in FIELD_MAPS:
        return is_envelope(document[member][key])
    return is_envelope(document[member][int(key)].get("value"))
