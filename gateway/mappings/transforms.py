"""The value conversions a mapping may apply: types, date formats, units, code tables, bands.

Each is looked up by name when a mapping is loaded, so an unknown one refuses to start; at run
time each raises :class:`ValueError` with a message fit for the caller.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

#: Named date formats; any other format is a ``strptime`` pattern of the directives below.
DATE_FORMATS: dict[str, str] = {
    "iso-date": "%Y-%m-%d",
    "iso-datetime": "iso-datetime",  # datetime.fromisoformat; the date part is used
    "sap-dats": "%Y%m%d",  # SAP DATS: YYYYMMDD
    "german": "%d.%m.%Y",
    "us": "%m/%d/%Y",
}
_ALLOWED_DIRECTIVES = set("YmdybBjHMS%")

#: Units by dimension, as a factor to the dimension's base unit.
UNITS: dict[str, dict[str, Decimal]] = {
    "money": {"cents": Decimal("0.01"), "units": Decimal(1), "thousands": Decimal(1000)},
    "time": {"days": Decimal(1) / Decimal("30.4375"), "months": Decimal(1), "years": Decimal(12)},
}
UNIT_DIMENSION = {unit: dim for dim, units in UNITS.items() for unit in units}

#: Source numbers are refused beyond 10**MAX_MAGNITUDE (no canonical field comes near it).
MAX_MAGNITUDE = 15

SOURCE_TYPES = ("string", "integer", "number", "date", "boolean")
DERIVATIONS = ("months_since", "years_since")


def check_date_format(fmt: str) -> str:
    """The ``strptime`` pattern for ``fmt`` (a name or a pattern); ValueError if unusable."""
    if fmt in DATE_FORMATS:
        return DATE_FORMATS[fmt]
    directives = re.findall(r"%(.)", fmt)
    if not directives or not set(directives) <= _ALLOWED_DIRECTIVES:
        known = ", ".join(DATE_FORMATS)
        raise ValueError(f"unknown date format {fmt!r} (named: {known}; or a strptime pattern)")
    return fmt


def parse_date(value: Any, pattern: str) -> date:
    """``value`` read as a date with ``pattern`` (from :func:`check_date_format`)."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a date string")
    try:
        if pattern == "iso-datetime":
            return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
        return datetime.strptime(value, pattern).date()
    except ValueError:
        shown = "an ISO 8601 date-time" if pattern == "iso-datetime" else f"format {pattern!r}"
        raise ValueError(f"{value[:40]!r} is not a date in {shown}") from None


def parse_number(value: Any, integer: bool) -> Decimal:
    """``value`` (a JSON number or a numeric string) as a finite Decimal."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, int | float):
        number = Decimal(str(value))
    elif isinstance(value, str) and len(value) <= 40:
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
    else:
        raise ValueError("must be a number")
    if not number.is_finite():
        raise ValueError("must be a finite number")
    if number and number.adjusted() > MAX_MAGNITUDE:
        raise ValueError(f"is out of range (above 1e{MAX_MAGNITUDE})")
    if integer and number != number.to_integral_value():
        raise ValueError(f"{value!r} is not an integer")
    return number


def parse_boolean(value: Any) -> bool:
    """``value`` as a boolean: JSON true/false or the strings true/false/1/0/X/'' (SAP)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "x", "y", "yes"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "n", "no"):
        return False
    raise ValueError(f"{str(value)[:40]!r} is not a boolean")


def check_unit(spec: Mapping[str, str]) -> tuple[Decimal, str]:
    """The factor converting ``spec['from']`` to ``spec['to']``; ValueError if incompatible."""
    src, dst = spec["from"], spec["to"]
    for unit in (src, dst):
        if unit not in UNIT_DIMENSION:
            raise ValueError(f"unknown unit {unit!r} (known: {', '.join(UNIT_DIMENSION)})")
    if UNIT_DIMENSION[src] != UNIT_DIMENSION[dst]:
        raise ValueError(f"cannot convert {src} to {dst}")
    dim = UNITS[UNIT_DIMENSION[src]]
    return dim[src] / dim[dst], f"{src}->{dst}"


def months_between(start: date, end: date) -> int:
    """Whole months from ``start`` to ``end`` (negative if ``start`` is later)."""
    months = (end.year - start.year) * 12 + end.month - start.month
    if end.day < start.day:
        months -= 1
    return months


def to_json_number(number: Decimal, integer: bool) -> int | float:
    """A Decimal as the JSON number the canonical schema expects (integers rounded half up)."""
    if integer:
        return int(number.quantize(Decimal(1), rounding="ROUND_HALF_UP"))
    out = float(number)
    if not math.isfinite(out):
        raise ValueError("is out of range")
    return out


def load_code_csv(path: Path, column: str | None) -> dict[str, str]:
    """A code table from a CSV with ``code`` and ``label`` columns (rows of ``column`` only,
    when the file has a ``column`` column, like ``config/codes/german_credit_codes.csv``)."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        if "code" not in fields or "label" not in fields:
            raise ValueError(f"{path.name} needs the columns code and label")
        rows = list(reader)
    if column is not None and "column" not in fields:
        raise ValueError(f"{path.name} has no column named 'column' to select {column!r}")
    table = {r["code"]: r["label"] for r in rows if column is None or r["column"] == column}
    if not table:
        raise ValueError(f"{path.name} has no codes for {column!r}")
    return table


def band(value: Decimal, bands: Sequence[tuple[Decimal | None, Any]]) -> Any:
    """The value of the first band whose ``below`` bound exceeds ``value`` (None: no bound)."""
    for below, out in bands:
        if below is None or value < below:
            return out
    raise ValueError(f"{value} is above every band")
