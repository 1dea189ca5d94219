"""MISMO 3.4 batch files: one application per ``DEAL``, mapped like a single MISMO request.

Two shapes are read, the two a mortgage loan origination system (LOS) exports:

- one XML file, a ``MESSAGE`` whose ``DEAL_SETS/DEAL_SET/DEALS`` hold one or several
  ``DEAL`` elements (a bulk delivery, e.g. a pool of closed loans);
- a ZIP archive of per-loan XML files, one ``MESSAGE`` each (an LOS's "export selected
  loans"): its ``.xml`` members in name order; other members (PDFs, folders) are skipped.

Each ``DEAL`` is mapped with the same mapping as ``POST /v1/pipelines/<p>/mismo``
(``config/mappings/mismo-3.4.yaml``): the mapping sees its ``MESSAGE`` with that ``DEAL``
alone, so its paths (``…/DEALS/DEAL/…``, the file's ``CreatedDatetime``) read the same.
XML goes through the hardened parser (:func:`adapters.soap.xml.parse`: no DTD, no
entity, no network). A document that is not XML or not a ``MESSAGE``, or a ``MESSAGE``
without a ``DEAL``, becomes one rejected row naming the document, so one bad file in an
archive does not stop the batch.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from lxml import etree

from adapters.soap.xml import XMLRefused, parse
from gateway.batch.readers import Chunk
from gateway.errors import FieldError
from gateway.mappings import Mapping, MappingError

#: Largest XML member read from a ZIP archive (uncompressed bytes), against zip bombs.
MAX_MEMBER_BYTES = 64 * 1024 * 1024
ZIP_MAGIC = b"PK\x03\x04"

#: One application: (fields, application id, errors); errors non-empty = rejected row.
Row = tuple[dict[str, Any], str | None, tuple[FieldError, ...]]


def is_zip(path: str | Path) -> bool:
    """True when the file starts like a ZIP archive (what a ``.zip`` export is)."""
    with open(path, "rb") as handle:
        return handle.read(4) == ZIP_MAGIC


def iter_documents(path: str | Path) -> Iterator[tuple[str, bytes]]:
    """``(name, XML bytes)`` of each document in the file: itself, or a ZIP's ``.xml`` members."""
    path = Path(path)
    if not is_zip(path):
        yield path.name, path.read_bytes()
        return
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"not a readable ZIP archive: {exc}") from None
    with archive:
        members = sorted(
            (m for m in archive.infolist() if m.filename.lower().endswith(".xml")),
            key=lambda m: m.filename,
        )
        if not members:
            raise ValueError("the ZIP archive holds no .xml member")
        for member in members:
            if member.file_size > MAX_MEMBER_BYTES:
                raise ValueError(f"{member.filename}: larger than {MAX_MEMBER_BYTES} bytes")
            try:
                with archive.open(member) as handle:
                    data = handle.read(MAX_MEMBER_BYTES + 1)  # the header's size may lie
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
                raise ValueError(f"{member.filename}: cannot be read ({exc})") from None
            if len(data) > MAX_MEMBER_BYTES:
                raise ValueError(f"{member.filename}: larger than {MAX_MEMBER_BYTES} bytes")
            yield member.filename, data


def _namespace(mapping: Mapping) -> str:
    root = mapping.root or ""
    return root[: root.index("}") + 1] if root.startswith("{") else ""


def document_rows(mapping: Mapping, name: str, data: bytes) -> list[Row]:
    """The applications of one MISMO document, one per ``DEAL`` (at least one row)."""
    pointer = f"/file/{name}"
    try:
        root = parse(data)
    except XMLRefused as exc:
        return [({}, None, (FieldError(pointer, "xml", str(exc)),))]
    ns = _namespace(mapping)
    if mapping.root is not None and root.tag != mapping.root:
        detail = f"the root element must be {mapping.root}, not {root.tag}"
        return [({}, None, (FieldError(pointer, "root", detail),))]
    deal_sets = root.find(f"{ns}DEAL_SETS")
    deals = [] if deal_sets is None else list(deal_sets.iter(f"{ns}DEAL"))
    if deal_sets is None or not deals:
        return [({}, None, (FieldError(pointer, "required", "no DEAL element"),))]
    # The mapping reads MESSAGE/DEAL_SETS/DEAL_SET/DEALS/DEAL: show it one DEAL at a time by
    # detaching every DEAL_SET and DEAL and putting back only the one being read (O(n)).
    sets = list(deal_sets.findall(f"{ns}DEAL_SET"))
    placed = [(deal, deal.getparent()) for deal in deals]
    for deal, parent in placed:
        parent.remove(deal)
    for deal_set in sets:
        deal_sets.remove(deal_set)
    rows: list[Row] = []
    for deal, parent in placed:
        deal_set = _ancestor(parent, f"{ns}DEAL_SET")
        if deal_set is not None:
            deal_sets.append(deal_set)
        parent.append(deal)
        try:
            result = mapping.apply(root)
            rows.append((dict(result.fields), result.application_id, ()))
        except MappingError as exc:
            rows.append(({}, None, tuple(exc.errors)))
        finally:
            parent.remove(deal)
            if deal_set is not None:
                deal_sets.remove(deal_set)
    return rows


def _ancestor(element: etree._Element, tag: str) -> etree._Element | None:
    node: etree._Element | None = element
    while node is not None and node.tag != tag:
        node = node.getparent()
    return node


def iter_rows(path: str | Path, mapping: Mapping) -> Iterator[Row]:
    """Every application of the file, in order (documents in name order, DEALs in file order)."""
    for name, data in iter_documents(path):
        yield from document_rows(mapping, name, data)


def count_deals(path: str | Path, mapping: Mapping) -> int:
    """How many rows the file gives (one per DEAL, one per unreadable document)."""
    return sum(1 for _ in iter_rows(path, mapping))


def iter_mismo_chunks(path: str | Path, mapping: Mapping, chunk_size: int) -> Iterator[Chunk]:
    """The file's applications, ``chunk_size`` at a time, as mapped chunks."""
    batch: list[Row] = []
    first = 1
    for row in iter_rows(path, mapping):
        batch.append(row)
        if len(batch) == chunk_size:
            yield _chunk(first, batch)
            first += len(batch)
            batch = []
    if batch:
        yield _chunk(first, batch)


def _chunk(first: int, rows: Sequence[Row]) -> Chunk:
    names = list(dict.fromkeys(k for fields, _, _ in rows for k in fields))
    frame = pd.DataFrame(
        {n: pd.Series([f.get(n) for f, _, _ in rows], dtype=object) for n in names},
        index=pd.RangeIndex(len(rows)),
    )
    errors = {i: errs for i, (_, _, errs) in enumerate(rows) if errs}
    return Chunk(first, frame, errors, [app_id for _, app_id, _ in rows])
