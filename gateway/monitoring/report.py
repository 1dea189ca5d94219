"""A self-contained HTML report of monitoring runs: drift over time as inline SVG.

No script, no stylesheet or font from a CDN: the file opens offline and can be mailed
or attached to a ticket. Only aggregates are shown (statistics, shares, approval rates).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

_COLORS = ("#1b6ca8", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d96a3", "#30343f", "#a05195")
_W, _H, _PAD = 720, 260, 40


def _psi_series(history: Sequence[Mapping[str, Any]]) -> dict[str, list[float | None]]:
    """PSI per feature (and the score) over the runs, in run order."""
    series: dict[str, list[float | None]] = {}
    for i, run in enumerate(history):
        results = run["results"]
        rows = [*results.get("features", ()), *([results["score"]] if results.get("score") else [])]
        for f in rows:
            series.setdefault(f["feature"], [None] * len(history))[i] = f.get("psi")
    return series


def drift_chart(
    history: Sequence[Mapping[str, Any]], alert: float | None, warn: float | None
) -> str:
    """PSI per feature (and the score) over ``history`` as inline SVG; every name escaped."""
    series = _psi_series(history)
    if not series or len(history) < 1:
        return "<p>No drift runs yet.</p>"
    top = max([v for s in series.values() for v in s if v is not None] + [alert or 0.25, 0.05])
    n = max(len(history) - 1, 1)

    def x(i: int) -> float:
        return _PAD + (_W - 2 * _PAD) * i / n

    def y(v: float) -> float:
        return _H - _PAD - (_H - 2 * _PAD) * min(v, top) / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" role="img" aria-label="PSI per feature over runs">',
        f'<rect width="{_W}" height="{_H}" fill="#fff"/>',
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#999"/>',
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#999"/>',
        f'<text x="4" y="{_PAD - 8}" font-size="11">PSI (max {top:.2f})</text>',
    ]
    for level, color, label in ((alert, "#d1495b", "alert"), (warn, "#edae49", "warn")):
        if level is not None and level <= top:
            parts.append(
                f'<line x1="{_PAD}" y1="{y(level):.1f}" x2="{_W - _PAD}" y2="{y(level):.1f}" '
                f'stroke="{color}" stroke-dasharray="4 3"/>'
                f'<text x="{_W - _PAD + 2}" y="{y(level) + 4:.1f}" font-size="10" '
                f'fill="{color}">{label}</text>'
            )
    # the features that ever reached a warning are drawn in colour, the others in grey
    flagged = [k for k, s in series.items() if any(v is not None and v >= (warn or 0.1) for v in s)]
    for name, values in series.items():
        color = _COLORS[flagged.index(name) % len(_COLORS)] if name in flagged else "#ccc"
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values) if v is not None)
        if points:
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}">'
                f"<title>{escape(name)}</title></polyline>"
            )
    for j, name in enumerate(flagged):
        parts.append(
            f'<text x="{_PAD + 6}" y="{_PAD + 12 + 12 * j}" font-size="11" '
            f'fill="{_COLORS[j % len(_COLORS)]}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape('' if c is None else str(c))}</td>" for c in r) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(
    history: Sequence[Mapping[str, Any]],
    latest: Mapping[str, Sequence[Mapping[str, Any]]],
    levels: Mapping[str, Any] | None = None,
) -> str:
    """The report: drift over ``history`` (oldest first), then the ``latest`` run of each kind."""
    psi = (levels or {}).get("psi") or {"alert": 0.2, "warn": 0.1}
    sections = [
        "<h2>Drift over time</h2>",
        drift_chart(history, psi.get("alert"), psi.get("warn")),
        f"<p>{len(history)} drift run(s), oldest first; dashed lines: PSI levels.</p>",
    ]
    for run in latest.get("drift", ()):
        r = run["results"]
        rows: list[tuple[Any, ...]] = [
            (
                f["feature"],
                f["status"],
                f.get("psi"),
                f.get("ks"),
                f.get("js"),
                f.get("null_rate_delta"),
                f.get("unseen_rate"),
            )
            for f in [*r.get("features", ()), *([r["score"]] if r.get("score") else [])]
        ]
        sections += [
            f"<h2>Latest drift: {escape(run['pipeline'])} · {escape(run['model'])} "
            f"v{run['version']} · {run['window']['rows']} decisions · "
            f"{run['alerts']} alert(s)</h2>",
            _table(("feature", "status", "PSI", "KS", "JS", "null Δ", "unseen"), rows),
        ]
    for run in latest.get("performance", ()):
        r = run["results"]
        sections += [
            f"<h2>Performance: {escape(run['pipeline'])} · {escape(run['model'])} "
            f"v{run['version']}</h2>",
            _table(
                ("outcomes", "AUC", "training AUC", "KS", "Brier", "status"),
                [
                    (
                        r["outcomes"],
                        r["auc"],
                        r["training"].get("auc"),
                        r["ks"],
                        r["brier"],
                        r["status"],
                    )
                ],
            ),
        ]
    for run in latest.get("fairness", ()):
        rows = [
            (a["attribute"], g["group"], g["decided"], g["approval_rate"], g["ratio"])
            for a in run["results"]["attributes"]
            for g in a["groups"]
        ]
        sections += [
            f"<h2>Fairness: {escape(run['pipeline'])} · {escape(run['model'])} "
            f"v{run['version']}</h2>",
            _table(("attribute", "group", "decided", "approval rate", "ratio to highest"), rows),
        ]
    style = (
        "body{font:14px system-ui,sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}"
        "td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>loangate monitoring</title><style>{style}</style></head><body>"
        "<h1>loangate monitoring</h1>" + "".join(sections) + "</body></html>\n"
    )
