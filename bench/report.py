"""Writing a bench's figures into its own marked section of ``docs/performance.md``."""

from __future__ import annotations

import re
from pathlib import Path

END_MARKER = "<!-- /bench -->"


def replace_section(
    path: Path, start_marker: str, text: str, intro: str = "# Performance\n"
) -> None:
    """Replace the section from ``start_marker`` to :data:`END_MARKER` in ``path`` with ``text``
    (appending it if absent), leaving every other section as it is."""
    doc = path.read_text() if path.exists() else intro
    pattern = re.compile(re.escape(start_marker) + r".*?" + re.escape(END_MARKER), re.DOTALL)
    if pattern.search(doc):
        doc = pattern.sub(lambda _m: text, doc, count=1)
    else:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc)
