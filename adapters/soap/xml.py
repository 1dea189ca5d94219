"""Hardened XML parsing of SOAP requests.

Nothing a request says can make the parser read a file, open a connection, expand an entity or
build an unbounded tree: the body is capped before it is parsed (``server.max_body_bytes``), any
document type declaration is refused outright (so no DTD, internal or external, and no entity
is ever declared), and the lxml parser is built with entity resolution, network access and DTD
loading off and libxml2's default limits on (depth, text node size). zeep only ever sees the tree
this module produced.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from lxml import etree

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
ENVELOPES = {SOAP11_ENV: "1.1", SOAP12_ENV: "1.2"}

_local = threading.local()


class _RefuseAll(etree.Resolver):
    """Defence in depth: should libxml2 ever try to load a URL, the load fails."""

    def resolve(self, system_url: str, public_id: str, context: object) -> None:
        raise XMLRefused("External resources are not loaded.")


class XMLRefused(ValueError):
    """The body is not XML the gateway will read; the message says why (safe to show)."""


def parser() -> etree.XMLParser:
    """This thread's hardened parser (lxml parsers must not be shared between threads)."""
    found: etree.XMLParser | None = getattr(_local, "parser", None)
    if found is None:
        found = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,  # keep libxml2's limits: depth 256, 10 MB text nodes
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )
        found.resolvers.add(_RefuseAll())
        _local.parser = found
    return found


def parse(body: bytes) -> etree._Element:
    """The root element of ``body``; :class:`XMLRefused` for anything not plain XML."""
    if not body.strip():
        raise XMLRefused("The request body is empty.")
    # Refuse before parsing: a DOCTYPE is how every entity and DTD attack begins.
    text = body.decode("utf-16", "replace") if body[:2] in (b"\xff\xfe", b"\xfe\xff") else body
    if isinstance(text, str):
        text = text.encode("utf-8", "replace")
    if b"<!DOCTYPE" in text or b"<!ENTITY" in text:
        raise XMLRefused("Document type declarations (DTDs) and entities are not accepted.")
    try:
        root = etree.fromstring(body, parser())
    except etree.XMLSyntaxError as exc:
        raise XMLRefused(f"The body is not well-formed XML: {_first_line(exc)}") from None
    tree = root.getroottree()
    # The same check after parsing, for encodings the byte scan above cannot see (UTF-16...).
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise XMLRefused("Document type declarations (DTDs) and entities are not accepted.")
    if next(root.iter(etree.Entity), None) is not None:
        raise XMLRefused("Entity references are not accepted.")
    return root


def _first_line(exc: etree.XMLSyntaxError) -> str:
    return str(exc.msg or exc).splitlines()[0][:200]


@dataclass(frozen=True)
class Envelope:
    """A parsed SOAP envelope: its version, header entries and the one body element."""

    version: str  # "1.1" | "1.2"
    root: etree._Element
    header: tuple[etree._Element, ...]
    payload: etree._Element

    @property
    def env_ns(self) -> str:
        return SOAP11_ENV if self.version == "1.1" else SOAP12_ENV


class NotAnEnvelope(XMLRefused):
    """Well-formed XML that is not a SOAP envelope; ``version_mismatch`` for another SOAP."""

    def __init__(self, message: str, version_mismatch: bool = False) -> None:
        super().__init__(message)
        self.version_mismatch = version_mismatch


def envelope(root: etree._Element) -> Envelope:
    """Split a parsed document into a SOAP :class:`Envelope`, checking its structure."""
    qname = etree.QName(root)
    version = ENVELOPES.get(qname.namespace or "")
    if qname.localname != "Envelope" or version is None:
        if qname.localname == "Envelope":
            raise NotAnEnvelope(
                f"Unknown SOAP envelope namespace {qname.namespace!r}: send SOAP 1.1 "
                f"({SOAP11_ENV}) or 1.2 ({SOAP12_ENV}).",
                version_mismatch=True,
            )
        raise NotAnEnvelope("The body is not a SOAP envelope.")
    env = SOAP11_ENV if version == "1.1" else SOAP12_ENV
    children = [c for c in root if isinstance(c.tag, str)]
    header: tuple[etree._Element, ...] = ()
    if children and children[0].tag == f"{{{env}}}Header":
        header = tuple(c for c in children.pop(0) if isinstance(c.tag, str))
    if len(children) != 1 or children[0].tag != f"{{{env}}}Body":
        raise NotAnEnvelope("The envelope must hold an optional Header and then one Body.")
    entries = [c for c in children[0] if isinstance(c.tag, str)]
    if len(entries) != 1:
        raise NotAnEnvelope("The Body must hold exactly one operation element.")
    return Envelope(version, root, header, entries[0])
