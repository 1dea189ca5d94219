"""Source paths: where a mapping reads a value in a JSON record or an XML document.

A JSON path is dotted member names with optional list indexes (``loan.terms[0].amount``).
An XML path is an XPath 1.0 location path relative to the document's root element, with the
prefixes a mapping declares (``m:DEAL_SETS/m:DEAL_SET/m:DEALS/m:DEAL``); it may end in an
attribute (``@SEGMENT``) or ``text()``. Both are compiled once, when the mapping is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree

_JSON_STEP = r"[A-Za-z_][A-Za-z0-9_\-]*(?:\[\d+\])*"
_JSON_PATH = re.compile(rf"^{_JSON_STEP}(?:\.{_JSON_STEP})*$")
_INDEX = re.compile(r"\[(\d+)\]")
_PREFIX = re.compile(r"(?<![\w\-.:'\"])([A-Za-z_][\w\-.]*):(?![:/])(?=[A-Za-z_*])")

#: The value at a path was absent (distinct from a present null).
MISSING: Any = object()


class PathSyntaxError(ValueError):
    """A source path a mapping cannot use; the message says why."""


class AmbiguousPath(ValueError):
    """An XML path that matched more than one node."""


@dataclass(frozen=True)
class JsonPath:
    """A compiled dotted JSON path."""

    text: str
    steps: tuple[str | int, ...]

    def find(self, record: Any) -> Any:
        """The value at this path in ``record``, or :data:`MISSING`."""
        node = record
        for step in self.steps:
            if isinstance(step, int):
                if not isinstance(node, list) or step >= len(node):
                    return MISSING
            elif not isinstance(node, Mapping) or step not in node:
                return MISSING
            node = node[step]
        return node


@dataclass(frozen=True)
class XmlPath:
    """A compiled XPath location, evaluated relative to the document's root element."""

    text: str
    xpath: etree.XPath

    def find(self, record: Any) -> Any:
        """The text of the single node at this path, or :data:`MISSING`; empty text is missing."""
        if not isinstance(record, etree._Element):
            return MISSING
        found = self.xpath(record)
        if isinstance(found, list):
            nodes = [n for n in found if not isinstance(n, etree._Comment)]
            if not nodes:
                return MISSING
            if len(nodes) > 1:
                raise AmbiguousPath(f"matches {len(nodes)} nodes; exactly one was expected")
            node = nodes[0]
            text = node.text if isinstance(node, etree._Element) else str(node)
        elif isinstance(found, bool | float):
            return found
        else:
            text = str(found)
        text = (text or "").strip()
        return text if text else MISSING


def compile_json_path(text: str) -> JsonPath:
    """A :class:`JsonPath`; :class:`PathSyntaxError` for anything else."""
    if not isinstance(text, str) or not _JSON_PATH.match(text):
        raise PathSyntaxError(f"{text!r} is not a dotted JSON path (e.g. loan.terms[0].amount)")
    steps: list[str | int] = []
    for part in text.split("."):
        name = part.split("[", 1)[0]
        steps.append(name)
        steps.extend(int(i) for i in _INDEX.findall(part))
    return JsonPath(text, tuple(steps))


def compile_xml_path(text: str, namespaces: Mapping[str, str]) -> XmlPath:
    """An :class:`XmlPath` using ``namespaces``' prefixes; :class:`PathSyntaxError` otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise PathSyntaxError("an XML path must be a non-empty string")
    if text.lstrip().startswith("/"):
        raise PathSyntaxError(f"{text!r}: XML paths are relative to the root element")
    unknown = sorted({p for p in _PREFIX.findall(text) if p not in namespaces})
    if unknown:
        raise PathSyntaxError(f"{text!r}: undeclared namespace prefix(es): {', '.join(unknown)}")
    try:
        xpath = etree.XPath(text, namespaces=dict(namespaces), smart_strings=False)
    except etree.XPathSyntaxError as exc:
        raise PathSyntaxError(f"{text!r} is not a valid XPath: {exc}") from None
    return XmlPath(text, xpath)
