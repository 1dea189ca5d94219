"""A direct reader of the plain ``ScoreApplication`` body, with zeep for everything else.

zeep's deserialiser builds typed objects for the whole envelope (0.2 ms for a German credit
application) before the adapter turns them back into a dict. Most requests are plain: the
wrapper's ``applicationId`` and ``applicant`` in the WSDL's namespace and order, each applicant
field once, as text in its type's XSD lexical form, nothing else. :meth:`PlainReader.read` takes
exactly those, with the values zeep would give (``int()`` / ``float()`` of the same text, strings
as written), and answers ``None`` for anything else — an unknown, repeated, misplaced,
unqualified, empty or nil element, an attribute, child elements or text where none belongs, a
required field left out, a header entry of the WSDL's namespace other than one plain
``IdempotencyKey`` — so that zeep and the adapter's diagnosis read it and answer the same
precise fault as before. The reader refuses nothing itself: it only decides who reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from lxml import etree

_BLANK = re.compile("[ \t\r\n]*")


def _blank(text: str | None) -> bool:
    return text is None or _BLANK.fullmatch(text) is not None


class PlainReader:
    """Reads the plain ``ScoreApplication`` bodies of one pipeline's WSDL."""

    def __init__(
        self,
        tns: str,
        fields: Mapping[str, str],
        required: Iterable[str],
        lexical: Mapping[str, re.Pattern[str]],
    ) -> None:
        """``fields``: applicant field -> XSD base type (int | double | string), in the
        declared order; ``lexical``: the pattern a value of each numeric type must match."""
        self.tns = tns
        self.order = tuple(fields)
        self.required = frozenset(required)
        self.application_id = f"{{{tns}}}applicationId"
        self.applicant = f"{{{tns}}}applicant"
        self.idempotency_key = f"{{{tns}}}IdempotencyKey"
        self.tns_prefix = f"{{{tns}}}"
        convert: dict[str, Callable[[str], Any]] = {"int": int, "double": float}
        #: element tag -> (field name, the XSD lexical pattern or None, text -> value)
        self.columns: dict[str, tuple[str, re.Pattern[str] | None, Callable[[str], Any]]] = {
            f"{{{tns}}}{name}": (name, lexical.get(kind), convert.get(kind, str))
            for name, kind in fields.items()
        }

    def read(
        self, payload: etree._Element, header: Iterable[etree._Element]
    ) -> tuple[str | None, dict[str, Any]] | None:
        """``(applicationId, fields in declared order)`` of a plain body, else ``None``."""
        if not self._plain_header(header) or payload.attrib or not _blank(payload.text):
            return None
        children = list(payload)
        application_id = None
        if len(children) == 2:
            first = children.pop(0)
            if (
                first.tag != self.application_id
                or first.attrib
                or len(first)
                or not first.text
                or not _blank(first.tail)
            ):
                return None
            application_id = first.text
        if len(children) != 1:
            return None
        applicant = children[0]
        if (
            applicant.tag != self.applicant
            or applicant.attrib
            or not _blank(applicant.text)
            or not _blank(applicant.tail)
        ):
            return None
        found: dict[str, Any] = {}
        for child in applicant:
            column = self.columns.get(child.tag)
            if column is None or child.attrib or len(child) or not _blank(child.tail):
                return None  # comments and PIs never reach here: the parser drops them
            name, lexical, convert = column
            text = child.text
            if name in found or not text or (lexical is not None and not lexical.fullmatch(text)):
                return None
            found[name] = convert(text)
        if not self.required.issubset(found):
            return None
        return application_id, {name: found[name] for name in self.order if name in found}

    def _plain_header(self, header: Iterable[etree._Element]) -> bool:
        """No header entry zeep reads but one plain ``IdempotencyKey`` (others are not its)."""
        keys = 0
        for entry in header:
            tag = entry.tag
            if not isinstance(tag, str) or not tag.startswith(self.tns_prefix):
                continue
            if tag != self.idempotency_key or entry.attrib or len(entry) or keys:
                return False
            keys += 1
        return True
