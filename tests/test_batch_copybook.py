"""COBOL copybooks: layouts, zoned and packed decimals, signs, implied decimals, code pages."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.batch.copybook import (
    ENCODINGS,
    CopybookError,
    decode_records,
    encode_record,
    parse_copybook,
)

LAYOUT = """\
000100* A loan record (fixed format: sequence numbers, comments in column 7).
000200 01  LOAN-RECORD.
000300     05  LOAN-ID              PIC X(8).
000400     05  TERM                 PIC 9(3).
000500     05  BALANCE              PIC S9(7)V99.
000600     05  AMOUNT               PIC S9(7)V99 COMP-3.
000700     05  COUNT-EVEN           PIC 9(4) COMP-3.
000800     05  RATE                 PIC V9(4).
000900     05  FILLER               PIC X(3).
001000     05  DETAILS.
001100         10  SCORE            PIC S9(3) PACKED-DECIMAL.
001200             88  HIGH-SCORE   VALUE 900.
"""
BOOK = parse_copybook(LAYOUT)


def test_layout_offsets_and_lengths() -> None:
    fields = {f.name: f for f in BOOK.fields}
    assert BOOK.name == "loan_record"
    assert [(f.name, f.offset, f.length) for f in BOOK.fields] == [
        ("loan_id", 0, 8),
        ("term", 8, 3),
        ("balance", 11, 9),
        ("amount", 20, 5),
        ("count_even", 25, 3),
        ("rate", 28, 4),
        ("filler", 32, 3),
        ("score", 35, 2),
    ]
    assert BOOK.record_length == 37
    assert fields["amount"].kind == "packed" and fields["amount"].scale == 2
    assert fields["balance"].signed and not fields["term"].signed
    assert "filler" not in BOOK.columns


def test_known_bytes_decode() -> None:
    """Hand-assembled EBCDIC: zoned with overpunched sign, COMP-3 with C/D/F signs."""
    record = (
        "LN-1".ljust(8).encode("cp037")
        + bytes([0xF0, 0xF1, 0xF2])  # TERM 012
        + bytes([0xF0] * 4 + [0xF1, 0xF2, 0xF3, 0xF4, 0xD5])  # BALANCE -123.45 (D zone)
        + bytes([0x00, 0x12, 0x34, 0x56, 0x7C])  # AMOUNT +12345.67
        + bytes([0x01, 0x23, 0x4F])  # COUNT-EVEN 1234 (unsigned F)
        + bytes([0xF2, 0xF5, 0xF0, 0xF0])  # RATE .2500
        + b"\x40\x40\x40"
        + bytes([0x04, 0x2D])  # SCORE -42
    )
    row = decode_records(BOOK, record, "cp037").frame.iloc[0].to_dict()
    assert row == {
        "loan_id": "LN-1",
        "term": 12,
        "balance": -123.45,
        "amount": 12345.67,
        "count_even": 1234,
        "rate": 0.25,
        "score": -42,
    }
    assert type(row["term"]) is int and type(row["score"]) is int


def test_ascii_overpunch_and_spaces_are_missing() -> None:
    record = encode_record(BOOK, {"loan_id": "X", "balance": -0.01, "term": 7}, "ascii")
    assert b"00000000J" in record  # -1 in the last digit is overpunched "J" in ASCII
    row = decode_records(BOOK, record, "ascii").frame.iloc[0].to_dict()
    assert row["balance"] == -0.01 and row["term"] == 7
    assert row["amount"] is None and row["rate"] is None


def test_invalid_bytes_are_named_not_guessed() -> None:
    good = encode_record(BOOK, {"loan_id": "A", "term": 1, "amount": 5, "score": 1})
    bad = bytearray(good)
    bad[8] = 0xC1  # "A" in a TERM digit
    bad[24] = 0x77  # sign nibble 7 is not a sign
    decoded = decode_records(BOOK, good + bytes(bad), "cp037")
    assert decoded.bad_fields == {1: ("term", "amount")}
    assert decoded.frame.loc[1, "term"] is None and decoded.frame.loc[0, "term"] == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("01 R.\n 05 A PIC X(2) OCCURS 3 TIMES.", "OCCURS"),
        ("01 R.\n 05 A PIC X(2).\n 05 B REDEFINES A PIC 9(2).", "REDEFINES"),
        ("01 R.\n 05 A PIC 9(4) COMP.", "COMP-3"),
        ("01 R.\n 05 A PIC 9(19).", "18 digits"),
        ("01 R.\n 05 A PIC XX9.", "unsupported PIC"),
        ("01 R.\n 05 A PIC X COMP-3.", "numeric PIC"),
        ("01 R.\n 05 A PIC X.\n 05 A PIC X.", "duplicate"),
        ("01 R.", "no elementary items"),
        ("just words.", "cannot read"),
    ],
)
def test_unsupported_copybooks_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(CopybookError, match=message):
        parse_copybook(text)


def test_partial_records_are_refused() -> None:
    with pytest.raises(ValueError, match="whole number"):
        decode_records(BOOK, b"\x40" * (BOOK.record_length + 1))
    with pytest.raises(ValueError, match="unknown encoding"):
        decode_records(BOOK, b"", "utf-16")


def test_values_that_do_not_fit_are_refused_on_encode() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        encode_record(BOOK, {"term": 1000})
    with pytest.raises(ValueError, match="negative"):
        encode_record(BOOK, {"term": -1})
    with pytest.raises(ValueError, match="decimals"):
        encode_record(BOOK, {"balance": 1.234})
    with pytest.raises(ValueError, match="longer"):
        encode_record(BOOK, {"loan_id": "123456789"})


def _money(digits: int, scale: int, signed: bool) -> st.SearchStrategy[object]:
    bound = 10**digits - 1
    units = st.integers(-bound if signed else 0, bound)
    if scale == 0:
        return units
    return units.map(lambda u: float(Decimal(u).scaleb(-scale)))


records = st.fixed_dictionaries(
    {},
    optional={
        "loan_id": st.text(
            st.characters(codec="latin-1", exclude_characters=" ", min_codepoint=33), max_size=8
        ).filter(bool),
        "term": _money(3, 0, False),
        "balance": _money(9, 2, True),
        "amount": _money(9, 2, True),
        "count_even": _money(4, 0, False),
        "rate": _money(4, 4, False),
        "score": _money(3, 0, True),
    },
)


@settings(max_examples=200)
@given(values=st.lists(records, min_size=1, max_size=5), encoding=st.sampled_from(ENCODINGS))
def test_encode_then_decode_gives_the_same_values(
    values: list[dict[str, object]], encoding: str
) -> None:
    if encoding == "ascii":  # ASCII records carry ASCII text only
        values = [
            {**v, "loan_id": v["loan_id"].encode("ascii", "replace").decode().replace("?", "Q")}
            if "loan_id" in v
            else v
            for v in values
        ]
    data = b"".join(encode_record(BOOK, v, encoding) for v in values)
    decoded = decode_records(BOOK, data, encoding)
    assert not decoded.bad_fields
    for expected, got in zip(values, decoded.frame.to_dict("records"), strict=True):
        assert {k: v for k, v in got.items() if v is not None} == expected
