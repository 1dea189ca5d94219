"""Checks of an uploaded batch file before it becomes a job: refuse early what cannot run.

Each check reads little (a header, a footer, the size): a file that passes can still hold
bad rows, which the job logs as rejections like any request. What is refused here gets a
422 naming what is wrong, and no job.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from adapters.soap.xml import XMLRefused, parse
from gateway.batch.copybook import Copybook
from gateway.batch.mismo import count_deals, is_zip
from gateway.batch.readers import count_rows
from gateway.errors import FieldError, Problem
from gateway.mappings import Mapping as MappingFile

#: Bytes of a CSV's head checked for text (the header and the first rows).
HEAD_BYTES = 1 << 20


def unreadable(detail: str, errors: tuple[FieldError, ...] = ()) -> Problem:
    """422: the uploaded file cannot be decided as declared."""
    return Problem(422, "unreadable-batch-file", "The batch file cannot be read", detail, errors)


def check_upload(
    path: Path,
    fmt: str,
    *,
    input_schema: Mapping[str, Any] | None,
    copybook: Copybook | None = None,
    mapping: MappingFile | None = None,
) -> int:
    """Refuse (:class:`Problem` 422) a file that cannot be decided; else its row count."""
    size = path.stat().st_size
    if size == 0:
        raise unreadable("The file is empty.")
    if fmt == "fixed":
        assert copybook is not None
        if size % copybook.record_length:
            raise unreadable(
                f"The file ({size} bytes) is not a whole number of "
                f"{copybook.record_length}-byte records of copybook {copybook.name or 'given'}."
            )
        return count_rows(path, fmt, copybook)
    if fmt == "mismo":
        assert mapping is not None
        if not is_zip(path):
            try:
                parse(path.read_bytes())
            except XMLRefused as exc:
                raise unreadable(str(exc)) from None
        try:
            return count_deals(path, mapping)
        except ValueError as exc:
            raise unreadable(str(exc)) from None
    columns = _columns(path, fmt)
    if mapping is None and input_schema is not None:
        known = set(input_schema.get("properties", {}))
        unknown = [c for c in columns if c not in known]
        if unknown and input_schema.get("additionalProperties") is False:
            raise unreadable(
                f"{len(unknown)} column(s) are not fields of the pipeline's application.",
                tuple(FieldError(f"/columns/{c}", "unknown", "not a field") for c in unknown),
            )
    return count_rows(path, fmt)


def _columns(path: Path, fmt: str) -> list[str]:
    if fmt == "parquet":
        try:
            return list(pq.ParquetFile(path).schema_arrow.names)
        except (pa.ArrowException, OSError, ValueError):
            raise unreadable("The file is not a Parquet file.") from None
    with open(path, "rb") as handle:
        head = handle.read(HEAD_BYTES)
    if b"\x00" in head:
        raise unreadable("The file is not CSV text (it holds NUL bytes).")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not a character cut at the end of the head
            raise unreadable(f"The file is not UTF-8 text (byte {exc.start}).") from None
        text = head[: exc.start].decode("utf-8")
    first = text.split("\n", 1)[0]
    try:
        header = pd.read_csv(io.StringIO(first + "\n"), nrows=0, dtype=str)
    except (ValueError, pd.errors.ParserError):
        raise unreadable("The file's first line is not a CSV header.") from None
    columns = [str(c) for c in header.columns]
    if not columns or any(not c.strip() or c.startswith("Unnamed:") for c in columns):
        raise unreadable("The file's first line is not a CSV header (an empty column name).")
    return columns
