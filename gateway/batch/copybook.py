"""COBOL copybooks: fixed-width record layouts, decoded a chunk at a time with numpy.

Supported (the subset mainframe extracts use for flat records)::

    01 APPLICATION.
       05 DURATION-IN-MONTH   PIC 9(3).
       05 CREDIT-AMOUNT       PIC S9(7)V99 COMP-3.
       05 AGE-IN-YEARS        PIC S9(3).
       05 PURPOSE             PIC X(4).
       05 FILLER              PIC X(2).

``PIC X(n)`` text (trailing spaces trimmed; all spaces = missing); ``9(n)`` unsigned
zoned decimal; ``S9(n)`` signed zoned decimal with the sign overpunched on the last
digit; ``V`` an implied decimal point; ``COMP-3`` / ``PACKED-DECIMAL`` packed decimal
(sign in the last nibble). Code page ``cp037`` (EBCDIC) or ``ascii``. Group items are
flattened; ``OCCURS`` and ``REDEFINES`` are refused. A field is named after its COBOL
name in lower case with ``-`` as ``_`` (``CREDIT-AMOUNT`` -> ``credit_amount``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ENCODINGS = ("cp037", "ascii")

#: Byte value -> Latin-1 byte value of the same character in code page 037 (a bijection).
_CP037_TO_LATIN1 = np.frombuffer(bytes(range(256)).decode("cp037").encode("latin-1"), np.uint8)
_LATIN1_TO_CP037 = np.argsort(_CP037_TO_LATIN1).astype(np.uint8)
_NEGATIVE_SIGNS = (0xB, 0xD)
_SIGNS = (0xA, 0xB, 0xC, 0xD, 0xE, 0xF)


class CopybookError(ValueError):
    """A copybook this parser cannot read; the message names the line."""


@dataclass(frozen=True)
class CopybookField:
    """One elementary item: where it is in the record and how it is stored."""

    name: str
    offset: int
    length: int  # bytes
    kind: str  # text | zoned | packed
    digits: int = 0
    scale: int = 0
    signed: bool = False

    @property
    def pic(self) -> str:
        if self.kind == "text":
            return f"X({self.length})"
        whole = self.digits - self.scale
        pic = ("S" if self.signed else "") + f"9({whole})"
        pic += f"V9({self.scale})" if self.scale else ""
        return pic + (" COMP-3" if self.kind == "packed" else "")


@dataclass(frozen=True)
class Copybook:
    """A record layout: its fields in order and its length in bytes."""

    name: str
    fields: tuple[CopybookField, ...]
    record_length: int

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.fields if f.name != "filler"]


_STATEMENT = re.compile(r"^(\d{1,2})\s+([A-Za-z0-9][A-Za-z0-9-]*)(.*)$", re.S)
_PIC = re.compile(r"\bPIC(?:TURE)?\s+(?:IS\s+)?(\S+)", re.I)
_NUMERIC_PIC = re.compile(r"^(S?)(9*)(?:V(9*))?$")


def _expand(pic: str) -> str:
    """``S9(3)V9(2)`` -> ``S999V99``."""
    return re.sub(r"(.)\((\d+)\)", lambda m: m.group(1) * int(m.group(2)), pic.upper())


def parse_copybook(text: str) -> Copybook:
    """Parse a copybook's text; :class:`CopybookError` names what it cannot read."""
    lines = []
    for line in text.splitlines():
        if len(line) > 6 and line[:6].strip().isdigit():
            line = " " * 6 + line[6:72]  # fixed format: sequence area and columns 73+
        stripped = line.strip()
        if not stripped or stripped.startswith("*") or line[6:7] in ("*", "/"):
            continue
        lines.append(stripped)
    statements = [s.strip() for s in re.split(r"\.(?:\s+|$)", " ".join(lines)) if s.strip()]
    fields: list[CopybookField] = []
    record_name = ""
    offset = 0
    for statement in statements:
        match = _STATEMENT.match(statement)
        if match is None:
            raise CopybookError(f"cannot read {statement!r}")
        level, cobol_name, rest = int(match.group(1)), match.group(2), match.group(3)
        if level == 88:
            continue  # condition names describe values, not storage
        upper = rest.upper()
        for clause in ("OCCURS", "REDEFINES"):
            if re.search(rf"\b{clause}\b", upper):
                raise CopybookError(f"{cobol_name}: {clause} is not supported (flat records only)")
        pic = _PIC.search(rest)
        if pic is None:
            if level == 1 and not record_name:
                record_name = cobol_name
            continue  # a group item: its children carry the storage
        field = _field(cobol_name, pic.group(1).rstrip("."), upper, offset)
        fields.append(field)
        offset += field.length
    if not fields:
        raise CopybookError("no elementary items (PIC clauses) found")
    names = [f.name for f in fields if f.name != "filler"]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CopybookError(f"duplicate field name(s): {', '.join(duplicates)}")
    return Copybook(record_name.lower().replace("-", "_"), tuple(fields), offset)


def _field(cobol_name: str, pic: str, clauses: str, offset: int) -> CopybookField:
    name = cobol_name.lower().replace("-", "_")
    expanded = _expand(pic)
    packed = bool(re.search(r"\b(COMP-3|COMPUTATIONAL-3|PACKED-DECIMAL)\b", clauses))
    if re.search(r"\b(COMP|COMP-[0-9]|COMPUTATIONAL|BINARY)\b", clauses) and not packed:
        raise CopybookError(f"{cobol_name}: only DISPLAY and COMP-3 usage are supported")
    if set(expanded) <= {"X"}:
        if packed:
            raise CopybookError(f"{cobol_name}: COMP-3 needs a numeric PIC, not {pic}")
        return CopybookField(name, offset, len(expanded), "text")
    numeric = _NUMERIC_PIC.match(expanded)
    if numeric is None or not (numeric.group(2) or numeric.group(3)):
        raise CopybookError(f"{cobol_name}: unsupported PIC {pic}")
    whole, scale = len(numeric.group(2)), len(numeric.group(3) or "")
    digits = whole + scale
    if digits > 18:
        raise CopybookError(f"{cobol_name}: more than 18 digits")
    signed = bool(numeric.group(1))
    length = digits // 2 + 1 if packed else digits
    return CopybookField(
        name, offset, length, "packed" if packed else "zoned", digits, scale, signed
    )


def load_copybook(path: str | Path) -> Copybook:
    """Parse the copybook file at ``path``."""
    return parse_copybook(Path(path).read_text(encoding="utf-8"))


# --- decoding -----------------------------------------------------------------------


@dataclass(frozen=True)
class DecodedChunk:
    """Records decoded into columns, and the fields that could not be read, per row."""

    frame: pd.DataFrame
    #: row position in the chunk -> names of fields whose bytes are not valid for their PIC
    bad_fields: Mapping[int, tuple[str, ...]]


def decode_records(book: Copybook, data: bytes, encoding: str = "cp037") -> DecodedChunk:
    """Decode ``data`` (whole records) into a DataFrame, one column per named field.

    Numbers with no implied decimals are integers, others floats; a field that is
    all spaces is missing (``None``); bytes that are not valid for a numeric PIC make
    the field missing and are listed in :attr:`DecodedChunk.bad_fields`.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r} (known: {', '.join(ENCODINGS)})")
    if len(data) % book.record_length:
        raise ValueError(f"data is not a whole number of {book.record_length}-byte records")
    n = len(data) // book.record_length
    records = np.frombuffer(data, np.uint8).reshape(n, book.record_length)
    # one decoding path: ASCII zoned digits and text are mapped to cp037 first
    ebcdic = _LATIN1_TO_CP037[records] if encoding == "ascii" else records
    columns: dict[str, Any] = {}
    bad = np.zeros((n, len(book.fields)), dtype=bool)
    for j, field in enumerate(book.fields):
        raw = ebcdic[:, field.offset : field.offset + field.length]
        if field.name == "filler":
            continue
        if field.kind == "text":
            columns[field.name] = _text(raw)
            continue
        blank = (raw == 0x40).all(axis=1)
        if field.kind == "packed":
            original = records[:, field.offset : field.offset + field.length]
            value, ok = _packed(original, field)
            blank = (original == (0x20 if encoding == "ascii" else 0x40)).all(axis=1)
        else:
            value, ok = _zoned(raw, field)
        bad[:, j] = ~ok & ~blank
        missing = blank | ~ok
        columns[field.name] = _numbers(value, missing, field.scale)
    bad_fields = {
        int(i): tuple(book.fields[j].name for j in np.flatnonzero(bad[i]))
        for i in np.flatnonzero(bad.any(axis=1))
    }
    # object columns keep Python ints as ints (an integer field must not become 7.0)
    frame = pd.DataFrame(
        {name: pd.Series(values, dtype=object) for name, values in columns.items()},
        index=pd.RangeIndex(n),
    )
    return DecodedChunk(frame, bad_fields)


def _text(raw: np.ndarray) -> list[str | None]:
    latin = np.ascontiguousarray(_CP037_TO_LATIN1[raw])
    values = latin.view(f"S{raw.shape[1]}").ravel().tolist()
    out: list[str | None] = []
    for value in values:
        text = value.decode("latin-1").rstrip(" ")  # COBOL pads with spaces only
        out.append(text or None)
    return out


def _digits_value(digits: np.ndarray) -> np.ndarray:
    powers = 10 ** np.arange(digits.shape[1] - 1, -1, -1, dtype=np.int64)
    return (digits.astype(np.int64) * powers).sum(axis=1)


def _zoned(raw: np.ndarray, field: CopybookField) -> tuple[np.ndarray, np.ndarray]:
    zones, digits = raw >> 4, raw & 0x0F
    ok = (digits <= 9).all(axis=1) & (zones[:, :-1] == 0xF).all(axis=1)
    last = zones[:, -1]
    ok &= np.isin(last, (0xC, 0xD, 0xF)) if field.signed else last == 0xF
    value = _digits_value(np.minimum(digits, 9))
    negative = field.signed & (last == 0xD)
    return np.where(negative, -value, value), ok


def _packed(raw: np.ndarray, field: CopybookField) -> tuple[np.ndarray, np.ndarray]:
    # the shape in full: -1 cannot be inferred for zero records (an empty chunk)
    nibbles = np.stack((raw >> 4, raw & 0x0F), axis=2).reshape(raw.shape[0], 2 * raw.shape[1])
    sign, digits = nibbles[:, -1], nibbles[:, :-1][:, -field.digits :]
    ok = (nibbles[:, :-1] <= 9).all(axis=1) & np.isin(sign, _SIGNS)
    if not field.signed:
        ok &= ~np.isin(sign, _NEGATIVE_SIGNS)
    if nibbles.shape[1] - 1 > field.digits:  # an even digit count leaves a leading zero nibble
        ok &= nibbles[:, 0] == 0
    value = _digits_value(np.minimum(digits, 9))
    return np.where(np.isin(sign, _NEGATIVE_SIGNS), -value, value), ok


def _numbers(value: np.ndarray, missing: np.ndarray, scale: int) -> list[int | float | None]:
    if scale:
        scaled = (value / 10**scale).tolist()  # int / power of ten: correctly rounded
        return [None if m else v for v, m in zip(scaled, missing.tolist(), strict=True)]
    return [None if m else v for v, m in zip(value.tolist(), missing.tolist(), strict=True)]


# --- encoding (writing files: tests, fixtures, exports) ---------------------------


def encode_record(book: Copybook, values: Mapping[str, Any], encoding: str = "cp037") -> bytes:
    """One record of ``book`` holding ``values`` (missing or ``None``: spaces)."""
    out = bytearray()
    for field in book.fields:
        value = values.get(field.name) if field.name != "filler" else None
        out += _encode_field(field, value, encoding)
    return bytes(out)


def _encode_field(field: CopybookField, value: Any, encoding: str) -> bytes:
    space = " ".encode(encoding)
    if value is None:
        return space * field.length
    if field.kind == "text":
        text = str(value)
        if len(text) > field.length:
            raise ValueError(f"{field.name}: {text!r} is longer than {field.length}")
        return text.ljust(field.length).encode(encoding)
    units = Decimal(str(value)).scaleb(field.scale)
    if units != units.to_integral_value():
        raise ValueError(f"{field.name}: {value!r} has more than {field.scale} decimals")
    number = int(units)
    if number < 0 and not field.signed:
        raise ValueError(f"{field.name}: {value!r} is negative for an unsigned PIC")
    digits = str(abs(number))
    if len(digits) > field.digits:
        raise ValueError(f"{field.name}: {value!r} does not fit PIC {field.pic}")
    digits = digits.zfill(field.digits)
    if field.kind == "packed":
        sign = 0xD if number < 0 else (0xC if field.signed else 0xF)
        nibbles = [int(d) for d in digits.rjust(field.length * 2 - 1, "0")] + [sign]
        return bytes(nibbles[i] << 4 | nibbles[i + 1] for i in range(0, len(nibbles), 2))
    ebcdic = bytearray(0xF0 | int(d) for d in digits)
    if field.signed:
        ebcdic[-1] = (0xD0 if number < 0 else 0xC0) | int(digits[-1])
    if encoding == "cp037":
        return bytes(ebcdic)
    return bytes(_CP037_TO_LATIN1[np.frombuffer(bytes(ebcdic), np.uint8)])


def iter_record_chunks(path: str | Path, book: Copybook, chunk_rows: int) -> Iterator[bytes]:
    """Whole records of the file at ``path``, ``chunk_rows`` at a time (bounded memory).

    A file that does not end on a record boundary raises :class:`ValueError` at its end.
    """
    size = book.record_length * chunk_rows
    with open(path, "rb") as handle:
        while data := handle.read(size):
            if len(data) % book.record_length:
                raise ValueError(
                    f"{path}: the file does not end on a {book.record_length}-byte record boundary"
                )
            yield data
