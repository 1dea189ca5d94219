"""Charts drawn on the server as SVG geometry: no script, no CDN, nothing to download.

Each function returns plain numbers for a template to place in ``<svg>`` elements (with
presentation attributes, which a strict Content-Security-Policy allows), together with the
figures they draw, which the page prints beside the chart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: Drawing area of a waterfall, in SVG user units (the viewBox scales it to the page).
WIDTH, ROW, LABEL, PAD = 800.0, 22.0, 330.0, 8.0
#: Longer labels are cut (the full name is in the bar's tooltip and the table beside it).
LABEL_CHARS = 44


@dataclass(frozen=True)
class Bar:
    """One step of a waterfall: from ``start`` to ``end`` on the value axis, drawn at ``x``
    with ``width`` on row ``y``; ``kind`` is ``base``, ``up``, ``down`` or ``total``;
    ``short`` is the label as drawn (cut to :data:`LABEL_CHARS`)."""

    label: str
    value: float
    short: str
    start: float
    end: float
    kind: str
    x: float
    width: float
    y: float


@dataclass(frozen=True)
class Waterfall:
    """A waterfall chart: its bars, the size of its drawing and the axis' zero."""

    bars: list[Bar]
    width: float
    height: float
    zero_x: float
    row: float = ROW
    label_width: float = LABEL


def waterfall(
    base_value: float, contributions: Mapping[str, float], output: float, top: int = 12
) -> Waterfall:
    """The explanation as a waterfall, from the base value through each contribution
    (largest first; beyond ``top`` they are summed into one "other fields" step) to the
    model's output, in log-odds. The steps end where the output is when the explanation
    adds up, which it does by construction (``base + sum(contributions) == output``)."""
    ranked = sorted(contributions.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
    shown, rest = ranked[:top], ranked[top:]
    if rest:
        shown.append((f"{len(rest)} other fields", sum(v for _, v in rest)))
    steps: list[tuple[str, float, float, float, str]] = [
        ("base value", base_value, 0.0, base_value, "base")
    ]
    level = base_value
    for name, value in shown:
        steps.append((name, value, level, level + value, "up" if value >= 0 else "down"))
        level += value
    steps.append(("model output", output, 0.0, output, "total"))
    lo = min(0.0, *(min(s[2], s[3]) for s in steps))
    hi = max(0.0, *(max(s[2], s[3]) for s in steps))
    span = (hi - lo) or 1.0
    plot = WIDTH - LABEL - 2 * PAD

    def at(value: float) -> float:
        return LABEL + PAD + (value - lo) / span * plot

    bars = [
        Bar(
            label=label,
            value=value,
            short=label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…",
            start=start,
            end=end,
            kind=kind,
            x=round(min(at(start), at(end)), 2),
            width=round(max(abs(at(end) - at(start)), 1.0), 2),
            y=round(PAD + i * ROW, 2),
        )
        for i, (label, value, start, end, kind) in enumerate(steps)
    ]
    return Waterfall(bars, WIDTH, round(2 * PAD + len(bars) * ROW, 2), round(at(0.0), 2))


@dataclass(frozen=True)
class PairedBar:
    """Two bars side by side for one category: ``a`` and ``b`` as heights, at ``x``."""

    label: str
    a: float
    b: float
    x: float
    a_y: float
    a_height: float
    b_y: float
    b_height: float


@dataclass(frozen=True)
class Paired:
    """A chart of paired bars (reference against window, predicted against observed)."""

    bars: list[PairedBar]
    width: float
    height: float
    bar_width: float
    top: float
    baseline: float


def paired_bars(
    labels: list[str], a: list[float | None], b: list[float | None], height: float = 180.0
) -> Paired:
    """Two series as paired bars on one axis from 0 to their largest value (missing values
    are drawn as 0 and listed as such in the table beside the chart)."""
    values = [v or 0.0 for v in (*a, *b)]
    top = max(values, default=0.0) or 1.0
    slot = (WIDTH - 2 * PAD) / max(len(labels), 1)
    bar = max(slot * 0.38, 1.0)
    plot = height - 2 * PAD - 14  # room for the labels under the axis
    baseline = PAD + plot

    def h(v: float | None) -> float:
        return round((v or 0.0) / top * plot, 2)

    out = [
        PairedBar(
            label=label,
            a=va or 0.0,
            b=vb or 0.0,
            x=round(PAD + i * slot + slot * 0.1, 2),
            a_y=round(baseline - h(va), 2),
            a_height=h(va),
            b_y=round(baseline - h(vb), 2),
            b_height=h(vb),
        )
        for i, (label, va, vb) in enumerate(zip(labels, a, b, strict=True))
    ]
    return Paired(out, WIDTH, height, round(bar, 2), top, round(baseline, 2))
