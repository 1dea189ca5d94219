"""TreeSHAP: the serving tables against Algorithm 2 and against Shapley values by definition."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.compiled_trees import CompiledForest, _tree, compile_hgb
from gateway.training import TrainedModel, load_training_data, train
from gateway.treeshap import Tree, build_path_tables, leaf_table, path_dependent_shap


@pytest.fixture(scope="module")
def hgb() -> TrainedModel:
    return train(kind="hgb")


@pytest.fixture(scope="module")
def forest(hgb: TrainedModel) -> CompiledForest:
    return compile_hgb(hgb.estimator, hgb.metadata)


@pytest.fixture(scope="module")
def trees(hgb: TrainedModel) -> list[Tree]:
    return [_tree(p[0].nodes) for p in hgb.estimator.named_steps["clf"]._predictors]


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return load_training_data().X()


def _per_tree(trees: list[Tree], go_left: np.ndarray) -> list[np.ndarray]:
    """Split the forest's global ``go_left`` into per-tree, per-node vectors."""
    out, offset = [], 0
    for tree in trees:
        splits = ~tree.is_leaf
        local = np.zeros(len(tree.is_leaf), dtype=bool)
        local[splits] = go_left[offset : offset + int(splits.sum())]
        offset += int(splits.sum())
        out.append(local)
    return out


def _conditional(tree: Tree, go_left: np.ndarray, known: set[int], j: int = 0) -> float:
    """E[f(x) | x_S] the path-dependent way: follow x on known columns, else cover-weight."""
    if tree.is_leaf[j]:
        return float(tree.value[j])
    left, right = int(tree.left[j]), int(tree.right[j])
    if int(tree.column[j]) in known:
        return _conditional(tree, go_left, known, left if go_left[j] else right)
    return (
        tree.cover[left] * _conditional(tree, go_left, known, left)
        + tree.cover[right] * _conditional(tree, go_left, known, right)
    ) / tree.cover[j]


def _shapley_by_definition(tree: Tree, go_left: np.ndarray, n_columns: int) -> np.ndarray:
    used = sorted({int(c) for c, leaf in zip(tree.column, tree.is_leaf, strict=True) if not leaf})
    m = len(used)
    phi = np.zeros(n_columns)
    for i in used:
        others = [c for c in used if c != i]
        for size in range(m):
            weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
            for subset in itertools.combinations(others, size):
                s = set(subset)
                phi[i] += weight * (
                    _conditional(tree, go_left, s | {i}) - _conditional(tree, go_left, s)
                )
    return phi


def test_algorithm_2_equals_shapley_values_by_definition(
    forest: CompiledForest, trees: list[Tree], rows: pd.DataFrame
) -> None:
    n = len(forest.columns)
    for row in rows.head(5).to_dict("records"):
        per_tree = _per_tree(trees, forest.splits.go_left(forest.vector(row)))
        for tree, go_left in list(zip(trees, per_tree, strict=True))[:4]:
            expected = _shapley_by_definition(tree, go_left, n)
            np.testing.assert_allclose(path_dependent_shap(tree, go_left, n), expected, atol=1e-12)


def test_tables_equal_algorithm_2(
    forest: CompiledForest, trees: list[Tree], rows: pd.DataFrame
) -> None:
    n = len(forest.columns)
    for row in rows.sample(15, random_state=3).to_dict("records"):
        go_left = forest.splits.go_left(forest.vector(row))
        reference = sum(
            path_dependent_shap(tree, g, n)
            for tree, g in zip(trees, _per_tree(trees, go_left), strict=True)
        )
        raw, fast = forest.paths.shap(go_left)
        np.testing.assert_allclose(fast, reference, atol=1e-12)
        assert raw == pytest.approx(forest.logit(row) - forest.baseline, abs=1e-12)


def test_base_value_is_the_cover_weighted_expectation(
    forest: CompiledForest, trees: list[Tree]
) -> None:
    assert forest.paths.expected == pytest.approx(sum(t.expected_value() for t in trees), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    value=st.floats(-5, 5),
    zeros=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=5),
)
def test_a_leaf_table_is_efficient(value: float, zeros: list[float]) -> None:
    """Per pattern, a leaf's attributions sum to v * (prod o - prod z)."""
    table = leaf_table(value, np.array(zeros))
    d = len(zeros)
    for pattern in range(1 << d):
        o = [(pattern >> i) & 1 for i in range(d)]
        expected = value * (math.prod(o) - math.prod(zeros))
        assert table[pattern].sum() == pytest.approx(expected, abs=1e-12)
        for i in range(d):  # a column the row agrees with where z = 1 changes nothing
            if zeros[i] == 1.0 and o[i] == 1:
                assert table[pattern, i] == pytest.approx(0.0, abs=1e-12)


def test_single_leaf_trees_are_a_constant() -> None:
    stump = Tree(
        left=np.array([0]),
        right=np.array([0]),
        column=np.array([0]),
        cover=np.array([10.0]),
        value=np.array([0.25]),
        is_leaf=np.array([True]),
    )
    tables = build_path_tables([stump], 2)
    assert tables.constant == tables.expected == 0.25
    assert tables.table.size == 0
