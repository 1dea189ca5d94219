"""Response envelopes written straight to text, from a plan compiled once from the WSDL.

zeep builds a response element by element: a typed object per complex value, a validation
pass, an lxml node per element, then ``tostring`` — 0.7 ms for a decision with 19
contributions, most of the SOAP adapter's cost. A :class:`Renderer` walks zeep's own XSD objects
of the operation's output element once, at start, and keeps what a response needs: each
element's tag, its order in the ``xsd:sequence``, whether it may be left out or repeated, and the
function that turns its value into text (zeep's ``xmlvalue`` of its simple type, so ``double``,
``int``, ``boolean`` and ``dateTime`` read as zeep writes them). Per response it only joins
strings: the bytes are the ones zeep writes, with the same ``soap-env`` and ``ns0`` prefixes.

Every text value is escaped (``&``, ``<``, ``>``, and carriage return as ``&#13;`` so that it
survives a parser's line-end normalisation). A character that XML 1.0 cannot carry at all (C0
controls other than tab / LF / CR, lone surrogates, U+FFFE and U+FFFF) is written as U+FFFD:
lxml refuses such a string, so zeep answered a Server fault for it, where the caller now gets its
decision with the character replaced (the logged document keeps the original). Likewise an
infinite or undefined double is written ``INF`` / ``-INF`` / ``NaN`` as XSD spells them, where
zeep wrote Python's ``inf`` / ``nan`` (which zeep, but not a validating reader, took back).

A type the compiler does not know (``xsd:all``, a choice, attributes, nillable elements, mixed
or simple content) raises :class:`Unsupported` at start, and the binding keeps zeep for that
operation: a plan never guesses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from zeep.xsd import ComplexType
from zeep.xsd.elements import Element
from zeep.xsd.elements.indicators import Sequence as XsdSequence
from zeep.xsd.types.builtins import Double, String
from zeep.xsd.types.simple import AnySimpleType

#: The prefix zeep gives the SOAP envelope namespace, and the one it gives the first other one.
ENV_PREFIX = "soap-env"
TNS_PREFIX = "ns0"

#: Characters that need escaping in element text, or that XML 1.0 cannot carry at all.
_SPECIAL = re.compile("[&<>\r]|[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


#: XSD's lexical forms of the doubles Python spells "inf", "-inf" and "nan".
_NON_FINITE = {"inf": "INF", "-inf": "-INF", "nan": "NaN"}


class Unsupported(ValueError):
    """The output type uses something the renderer does not write; zeep keeps the operation."""


class RenderError(ValueError):
    """A value does not fit the output type (a required element missing, a list where one
    value goes): as with zeep's ``ValidationError``, the caller gets a Server fault."""


def escape_text(text: str) -> str:
    """``text`` as XML 1.0 element content: escaped, characters XML cannot carry as U+FFFD."""
    if _SPECIAL.search(text) is None:
        return text
    text = _NOT_XML.sub("\ufffd", text)
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )


def escape_attribute(text: str) -> str:
    """``text`` as a double-quoted attribute value."""
    return escape_text(text).replace('"', "&quot;")


@dataclass(frozen=True)
class _Node:
    """One element of the output type, with what writing it needs."""

    key: str  # its local name: the key of its value in the parent mapping
    path: str  # for error messages: ScoreApplicationResponse.decision.model.name
    open: str
    close: str
    empty: str
    min_occurs: int
    many: bool
    text: Callable[[Any], str] | None  # a simple type's value -> text
    children: tuple[_Node, ...]


def _text_of(simple: AnySimpleType) -> Callable[[Any], str]:
    """zeep's conversion of ``simple`` to text, with the common cases taken directly."""
    xmlvalue = simple.xmlvalue
    if isinstance(simple, String):  # restrictions (enumerations) included
        return lambda value: value if type(value) is str else xmlvalue(value)
    if isinstance(simple, Double):

        def double(value: Any) -> str:
            if type(value) is float:
                # zeep writes str(value): "inf" and "nan", which XSD's double does not allow.
                return repr(value) if math.isfinite(value) else _NON_FINITE[repr(value)]
            return xmlvalue(value)

        return double
    return xmlvalue


def _compile(element: Element, tns: str, parent: str = "") -> _Node:
    """The plan of ``element``; :class:`Unsupported` for what it does not cover."""
    namespace, _, local = element.qname.text[1:].partition("}")
    if not element.qname.text.startswith("{") or namespace != tns:
        raise Unsupported(f"element {element.qname} is not in {tns}")
    path = f"{parent}.{local}" if parent else local
    if element.nillable:
        raise Unsupported(f"{path} is nillable")
    max_occurs = element.max_occurs
    many = max_occurs == "unbounded" or int(max_occurs) > 1
    if many and max_occurs != "unbounded":
        raise Unsupported(f"{path} has a bounded maxOccurs")
    tag = f"{TNS_PREFIX}:{local}"
    kind = element.type
    text: Callable[[Any], str] | None = None
    children: tuple[_Node, ...] = ()
    if isinstance(kind, AnySimpleType):
        text = _text_of(kind)
    elif isinstance(kind, ComplexType):
        body = kind._element
        if kind.attributes or kind._extension or kind._restriction:
            raise Unsupported(f"{path}: attributes or a derived type")
        if body is not None and not (
            isinstance(body, XsdSequence) and body.min_occurs == 1 and body.max_occurs == 1
        ):
            raise Unsupported(f"{path}: not one plain xsd:sequence")
        items = list(body or ())
        if not all(type(item) is Element for item in items):
            raise Unsupported(f"{path}: a group, choice or wildcard in the sequence")
        children = tuple(_compile(item, tns, path) for item in items)
    else:
        raise Unsupported(f"{path}: type {type(kind).__name__}")
    return _Node(
        key=local,
        path=path,
        open=f"<{tag}>",
        close=f"</{tag}>",
        empty=f"<{tag}/>",
        min_occurs=int(element.min_occurs),
        many=many,
        text=text,
        children=children,
    )


def _write(node: _Node, value: Any, out: list[str]) -> None:
    if node.many:
        if value is None:
            value = ()
        if not isinstance(value, Sequence) or isinstance(value, str | bytes):
            raise RenderError(f"{node.path}: expected a list of values")
        if len(value) < node.min_occurs:
            raise RenderError(f"Missing element {node.key} ({node.path})")
        for item in value:
            _write_one(node, item, out)
    elif value is None:
        if node.min_occurs:
            raise RenderError(f"Missing element {node.key} ({node.path})")
    else:
        _write_one(node, value, out)


def _write_one(node: _Node, value: Any, out: list[str]) -> None:
    if node.text is not None:
        if value is None:
            raise RenderError(f"Missing element {node.key} ({node.path})")
        out.append(node.open + escape_text(node.text(value)) + node.close)
        return
    if not isinstance(value, Mapping):
        raise RenderError(f"{node.path}: expected a mapping")
    mark = len(out)
    out.append(node.open)
    for child in node.children:
        item = value.get(child.key)
        if child.text is not None and not child.many and item is not None:
            out.append(child.open + escape_text(child.text(item)) + child.close)  # inlined
        else:
            _write(child, item, out)
    if len(out) == mark + 1:
        out[mark] = node.empty  # as lxml writes an element with no content
    else:
        out.append(node.close)


class Renderer:
    """One operation's response envelope (SOAP 1.1 or 1.2), written from a plan."""

    def __init__(self, output_element: Element, tns: str, envelope_ns: str) -> None:
        """Compile the plan of ``output_element`` (the operation's output body element)."""
        self.root = _compile(output_element, tns)
        self.head = (
            "<?xml version='1.0' encoding='UTF-8'?>\n"
            f'<{ENV_PREFIX}:Envelope xmlns:{ENV_PREFIX}="{escape_attribute(envelope_ns)}">'
            f"<{ENV_PREFIX}:Body>"
            # the body element declares the types' namespace, as zeep's output does
            + self.root.open[:-1]
            + f' xmlns:{TNS_PREFIX}="{escape_attribute(tns)}">'
        )
        self.tail = f"{self.root.close}</{ENV_PREFIX}:Body></{ENV_PREFIX}:Envelope>"

    def render(self, value: Mapping[str, Any]) -> bytes:
        """The envelope whose body element carries ``value`` (its children by local name)."""
        out = [self.head]
        for child in self.root.children:
            _write(child, value.get(child.key), out)
        if len(out) == 1:  # no content: lxml writes the body element empty
            out[0] = self.head[:-1] + "/>"
            out.append(self.tail[len(self.root.close) :])
        else:
            out.append(self.tail)
        return "".join(out).encode("utf-8")
