"""Comparing a replayed decision document with the logged one, member by member.

Only the members that say what was decided and why are compared (:data:`COMPARED`):
the identifiers, timestamps and timings of a re-run necessarily differ. Numbers are
equal within :data:`TOLERANCE`, everything else exactly; a difference is reported as
(JSON pointer of the member, logged value, replayed value).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: Members of the decision document that a replay must reproduce.
COMPARED: tuple[str, ...] = (
    "status",
    "status_code",
    "outcome",
    "errors",
    "probability_of_default",
    "model",
    "policy",
    "reason_codes",
    "explanation",
    "imputations",
    "enrichments",
    "referral_notes",
    "features",
)

#: Largest tolerated absolute difference between a logged and a replayed number.
#:
#: The log keeps each float exactly (JSON with the shortest repr that reads back to the
#: same double), and replay runs the same operations on the same inputs, so a replay on
#: the same build gives bit-identical numbers. The tolerance only admits last-bit noise
#: from another numpy/BLAS build summing in another order (~1e-16 on log-odds of order 1);
#: it cannot hide a changed decision, because the outcome, reason codes and rule hits are
#: compared exactly. ``max_abs_deviation`` in the report shows how close the numbers were.
TOLERANCE = 1e-12


@dataclass(frozen=True)
class Difference:
    """One member that did not reproduce."""

    member: str
    logged: Any
    replayed: Any

    def as_dict(self) -> dict[str, Any]:
        return {"member": self.member, "logged": self.logged, "replayed": self.replayed}


def _pointer(path: str, key: object) -> str:
    token = str(key).replace("~", "~0").replace("/", "~1")
    return f"{path}/{token}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Walk:
    def __init__(self) -> None:
        self.max_deviation = 0.0

    def diff(self, path: str, logged: Any, replayed: Any) -> Iterator[Difference]:
        if isinstance(logged, Mapping) and isinstance(replayed, Mapping):
            for key in (*logged, *(k for k in replayed if k not in logged)):
                if key not in replayed or key not in logged:
                    yield Difference(_pointer(path, key), logged.get(key), replayed.get(key))
                else:
                    yield from self.diff(_pointer(path, key), logged[key], replayed[key])
        elif isinstance(logged, list) and isinstance(replayed, list):
            if len(logged) != len(replayed):
                yield Difference(path, logged, replayed)
                return
            for i, (a, b) in enumerate(zip(logged, replayed, strict=True)):
                yield from self.diff(_pointer(path, i), a, b)
        elif _is_number(logged) and _is_number(replayed):
            if logged == replayed:
                return
            deviation = abs(float(logged) - float(replayed))
            if math.isfinite(deviation) and deviation <= TOLERANCE:
                self.max_deviation = max(self.max_deviation, deviation)
                return
            yield Difference(path, logged, replayed)
        elif logged != replayed or type(logged) is not type(replayed):
            yield Difference(path, logged, replayed)


def compare(
    logged: Mapping[str, Any], replayed: Mapping[str, Any]
) -> tuple[list[Difference], float]:
    """The differences between two decision documents over :data:`COMPARED`, and the
    largest tolerated numeric deviation met (0.0 when every number was identical)."""
    walk = _Walk()
    differences: list[Difference] = []
    for member in COMPARED:
        differences.extend(walk.diff(f"/{member}", logged.get(member), replayed.get(member)))
    return differences, walk.max_deviation
