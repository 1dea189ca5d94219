"""Batch file readers: CSV, Parquet and COBOL fixed-width, streamed in chunks.

Each yields :class:`Chunk` objects (the rows' numbers in the file, their fields as a
DataFrame, fields that could not be decoded) with bounded memory, whatever the size
of the file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from gateway.batch.copybook import Copybook, decode_records, iter_record_chunks
from gateway.errors import FieldError

if TYPE_CHECKING:
    from gateway.mappings import Mapping as Mapping_

FORMATS = ("csv", "parquet", "fixed", "mismo")
_INTEGER = re.compile(r"[+-]?\d+")
_INT64 = 2**63
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True)
class Chunk:
    """Consecutive rows of a file; row numbers count from 1."""

    first_row: int
    frame: pd.DataFrame
    #: row position -> what could not be read of it (the row is then rejected with these)
    row_errors: Mapping[int, Sequence[FieldError]] = field(default_factory=dict)
    application_ids: Sequence[str | None] | None = None

    @property
    def row_numbers(self) -> range:
        return range(self.first_row, self.first_row + len(self.frame))


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes (what a run's idempotency keys derive from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def guess_format(path: str | Path) -> str:
    """``csv``, ``parquet``, ``fixed`` or ``mismo`` from a file's suffix (``.dat``/``.txt``:
    fixed; ``.xml``/``.zip``: MISMO, see :mod:`gateway.batch.mismo`)."""
    suffix = Path(path).suffix.lower()
    if suffix in (".xml", ".zip"):
        return "mismo"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".dat", ".txt", ".ebc", ".fixed"):
        return "fixed"
    return "csv"


def count_rows(path: str | Path, fmt: str, copybook: Copybook | None = None) -> int:
    """How many rows the file holds (for progress), without reading them all into memory."""
    if fmt == "parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    if fmt == "fixed":
        assert copybook is not None
        return Path(path).stat().st_size // copybook.record_length
    with open(path, "rb") as handle:  # lines, less the header: an estimate for progress
        lines, last = 0, b"\n"
        while block := handle.read(1 << 20):
            lines, last = lines + block.count(b"\n"), block[-1:]
    lines += last != b"\n"
    return max(lines - 1, 0)


def iter_chunks(
    path: str | Path,
    fmt: str,
    chunk_size: int,
    *,
    copybook: Copybook | None = None,
    encoding: str = "cp037",
) -> Iterator[Chunk]:
    """The file's rows, ``chunk_size`` at a time."""
    if fmt not in FORMATS or fmt == "mismo":  # MISMO: gateway.batch.mismo, through a mapping
        raise ValueError(f"unknown format {fmt!r} (known: csv, parquet, fixed)")
    first = 1
    if fmt == "fixed":
        if copybook is None:
            raise ValueError("a fixed-width file needs a copybook")
        for data in iter_record_chunks(path, copybook, chunk_size):
            decoded = decode_records(copybook, data, encoding)
            errors = {
                i: tuple(
                    FieldError(f"/record/{name}", "format", "bytes not valid for the field's PIC")
                    for name in names
                )
                for i, names in decoded.bad_fields.items()
            }
            yield Chunk(first, decoded.frame, errors)
            first += len(decoded.frame)
    elif fmt == "parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_size):
            # object columns of Python values: an integer column with nulls stays integers
            frame = pd.DataFrame(
                {
                    name: pd.Series(batch.column(i).to_pylist(), dtype=object)
                    for i, name in enumerate(batch.schema.names)
                },
                index=pd.RangeIndex(batch.num_rows),
            )
            yield Chunk(first, frame)
            first += len(frame)
    else:
        reader = pd.read_csv(
            path, dtype=str, keep_default_na=False, chunksize=chunk_size, encoding="utf-8"
        )
        for frame in reader:
            yield Chunk(first, _typed(frame))
            first += len(frame)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """CSV text as JSON would carry it: ``6`` an integer, ``6.5`` a number, empty missing."""
    columns = {}
    for name in frame.columns:
        values: list[object] = []
        for text in frame[name].tolist():
            text = text.strip()
            if not text:
                values.append(None)
            elif len(text) <= 20 and _INTEGER.fullmatch(text) and -_INT64 <= int(text) < _INT64:
                values.append(int(text))  # beyond 64 bits: a number, as JSON would carry it
            elif _NUMBER.fullmatch(text):
                values.append(float(text))
            else:
                values.append(text)
        columns[str(name)] = pd.Series(values, dtype=object, index=frame.index)
    out = pd.DataFrame(columns)
    out.index = np.arange(len(out))
    return out


def map_chunk(mapping: Mapping_, chunk: Chunk) -> Chunk:
    """The chunk's source records turned into canonical applications by a declarative mapping.

    Row by row (a mapping reads paths and code tables per record); a record the mapping
    cannot read is rejected naming its source paths; fields it cannot fill stay missing, for
    the validators' missing-value policy.
    """
    from gateway.batch.decide import frame_records
    from gateway.mappings import MappingError

    rows: list[dict[str, object]] = []
    ids: list[str | None] = []
    errors: dict[int, Sequence[FieldError]] = dict(chunk.row_errors)
    for i, record in enumerate(frame_records(chunk.frame)):
        if i in errors:
            rows.append({})
            ids.append(None)
            continue
        try:
            result = mapping.apply(record)
        except MappingError as exc:
            errors[i] = tuple(exc.errors)
            rows.append({})
            ids.append(None)
            continue
        rows.append(result.fields)
        ids.append(result.application_id)
    names = list(dict.fromkeys(k for row in rows for k in row))
    frame = pd.DataFrame(
        {n: pd.Series([r.get(n) for r in rows], dtype=object) for n in names},
        index=pd.RangeIndex(len(rows)),
    )
    return Chunk(chunk.first_row, frame, errors, ids)
