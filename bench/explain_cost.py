"""Single-row explanation cost per model kind: fast-path score + explain, in microseconds.

For each kind (logistic, scorecard, hgb) the model is trained on the bundled data
and compiled as the gateway compiles it; then, over the 1,000 German credit rows,
one application is scored (``logit``) and explained (``explain``) at a time, which is
what a decision's scorer and explainer stages do. For hgb it also times TreeSHAP's
Algorithm 2 transcribed node by node (the reference the tests hold the serving
tables to), to show why the gateway serves the precomputed tables.

Reported: the median over rows of the best of ``--repeat`` timings of each row
(the best filters out other processes on a shared machine). Re-run::

    .venv/bin/python bench/explain_cost.py            # rewrites its section of docs/performance.md
    .venv/bin/python bench/explain_cost.py --no-write
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import timeit
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from report import replace_section  # the sibling bench module

from gateway.compiled import COMPILERS
from gateway.compiled_trees import CompiledForest, _tree
from gateway.training import EXPLANATION_METHODS, load_training_data, train
from gateway.treeshap import path_dependent_shap

DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
START, END = "<!-- bench:explanations -->", "<!-- /bench -->"
KINDS = ("logistic", "scorecard", "hgb")


def score_and_explain(model: Any, row: dict[str, Any]) -> object:
    """One application through the fast path: log-odds and its explanation."""
    return model.logit(row), model.explain(row)


def per_row_us(
    fn: Callable[[dict[str, Any]], object], rows: list[dict[str, Any]], repeat: int
) -> float:
    """Median over rows of the best of ``repeat`` single calls, in microseconds."""
    best = []
    for row in rows:
        times = timeit.repeat(functools.partial(fn, row), number=1, repeat=repeat)
        best.append(min(times))
    return statistics.median(best) * 1e6


def algorithm_2(model: CompiledForest, trees: list[Any]) -> Callable[[dict[str, Any]], object]:
    """Score + explain one row with the node-by-node reference TreeSHAP."""
    n = len(model.columns)

    def run(row: dict[str, Any]) -> object:
        go_left = model.splits.go_left(model.vector(row))
        phi, offset = np.zeros(n), 0
        for tree in trees:
            splits = ~tree.is_leaf
            local = np.zeros(len(splits), dtype=bool)
            local[splits] = go_left[offset : offset + int(splits.sum())]
            offset += int(splits.sum())
            phi += path_dependent_shap(tree, local, n)
        return model.logit(row), phi

    return run


def measure(rows_n: int, repeat: int) -> list[dict[str, Any]]:
    rows = load_training_data().X().head(rows_n).to_dict("records")
    results = []
    for kind in KINDS:
        trained = train(kind=kind)
        model = COMPILERS[kind](trained.estimator, trained.metadata)
        score = per_row_us(model.logit, rows, repeat)
        both = per_row_us(functools.partial(score_and_explain, model), rows, repeat)
        results.append(
            {"kind": kind, "method": EXPLANATION_METHODS[kind], "score": score, "total": both}
        )
        if isinstance(model, CompiledForest):
            clf = trained.estimator.named_steps["clf"]
            trees = [_tree(p[0].nodes) for p in clf._predictors]
            reference = per_row_us(algorithm_2(model, trees), rows[:20], 1)
            shape = f"{len(trees)} trees, {len(model.paths.leaf_value)} leaves"
            results.append(
                {
                    "kind": f"hgb ({shape})",
                    "method": "tree-shap, Algorithm 2 node by node (reference)",
                    "score": score,
                    "total": reference,
                }
            )
    return results


def section(results: Sequence[dict[str, Any]], rows_n: int, repeat: int) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        START,
        "## Explanation cost per model kind (single row, fast path)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; command: "
        "`.venv/bin/python bench/explain_cost.py`",
        f"- machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}; 1-minute load average at the start {load:.1f}",
        f"- median over {rows_n} German credit rows of the best of {repeat} timings per row",
        "",
        "| model kind | explanation method | score (µs) | score + explain (µs) |",
        "|---|---|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r['kind']} | {r['method']} | {r['score']:.1f} | {r['total']:.1f} |")
    lines += [
        "",
        "A decision pays the score + explain column once (scorer stage, then explainer stage).",
        END,
    ]
    return "\n".join(lines)


def write_doc(path: Path, text: str) -> None:
    """Replace this bench's section of ``path`` (or append it), keeping the others."""
    replace_section(path, START, text)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    text = section(measure(args.rows, args.repeat), args.rows, args.repeat)
    print(text)
    if not args.no_write:
        write_doc(DOC, text)


if __name__ == "__main__":
    main()
