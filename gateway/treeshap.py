"""Exact path-dependent TreeSHAP for tree ensembles, in numpy.

Trees are given as node arrays (``left``, ``right``, ``column``, ``cover``, ``value``,
``is_leaf``); a row is given by ``go_left``, the direction it takes at every split
node. That keeps this module free of how a split is decided (numeric threshold,
category bitset, missing values): the model's compiler decides, this module explains.

Two implementations of the same values:

* :func:`path_dependent_shap`: Lundberg, Erion & Lee (2018), *Consistent
  individualized feature attribution for tree ensembles*, Algorithm 2, transcribed
  node by node (EXTEND / UNWIND on the path of unique features). It is the
  reference the tests hold the fast form to.
* :class:`PathTables`: the serving form. For a leaf ``l`` with value ``v`` whose path
  splits on the unique columns ``U`` (``d = |U|``), path-dependent TreeSHAP is the
  Shapley value of the game ``v * prod_{j in U} (o_j if j in S else z_j)``, where
  ``z_j`` is the product of the cover fractions of the path's edges on ``j`` and
  ``o_j`` is 1 when the row agrees with all of them. So a leaf's attribution depends
  on the row only through the ``2^d`` patterns of ``o``: every pattern's values are
  computed once, when the model is loaded,

      phi_i(o) = v (o_i - z_i) sum_k k! (d-k-1)! / d! * [t^k] prod_{j != i} (o_j t + z_j),

  and per row the work is a few vectorised comparisons, a bitwise reduction per
  leaf and one gather (the "Fast TreeSHAP v2" idea of Yang, 2021).

The base value is the trees' expectation over their covers,
``sum_l v_l prod_{j in U_l} z_j``, so ``base + sum(phi) == sum of the reached leaves``
exactly (each leaf's attributions sum to ``v (prod o - prod z)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tree:
    """One tree's nodes; ``column`` and ``cover`` are meaningful for split nodes."""

    left: np.ndarray
    right: np.ndarray
    column: np.ndarray
    cover: np.ndarray
    value: np.ndarray
    is_leaf: np.ndarray

    def expected_value(self) -> float:
        """The cover-weighted mean of the leaf values (TreeSHAP's empty-set value)."""

        def walk(j: int) -> float:
            if self.is_leaf[j]:
                return float(self.value[j])
            left, right = int(self.left[j]), int(self.right[j])
            total = float(self.cover[j])
            return (
                float(self.cover[left]) * walk(left) + float(self.cover[right]) * walk(right)
            ) / total

        return walk(0)


# --- Algorithm 2, as published -------------------------------------------------------


def path_dependent_shap(tree: Tree, go_left: np.ndarray, n_columns: int) -> np.ndarray:
    """Attributions of one row in one tree (reference implementation, Algorithm 2)."""
    phi = np.zeros(n_columns)
    # A path element: [column, zero_fraction, one_fraction, weight].
    recurse(tree, go_left, phi, 0, [], 1.0, 1.0, -1)
    return phi


def recurse(
    tree: Tree,
    go_left: np.ndarray,
    phi: np.ndarray,
    j: int,
    parent: list[list[float]],
    p_zero: float,
    p_one: float,
    p_column: int,
) -> None:
    """RECURSE(j, m, p_z, p_o, p_i) of Algorithm 2."""
    path = _extend([list(e) for e in parent], p_zero, p_one, p_column)
    if tree.is_leaf[j]:
        for i in range(1, len(path)):
            w = _unwound_sum(path, i)
            column, zero, one = int(path[i][0]), path[i][1], path[i][2]
            phi[column] += w * (one - zero) * float(tree.value[j])
        return
    left, right = int(tree.left[j]), int(tree.right[j])
    hot, cold = (left, right) if go_left[j] else (right, left)
    column = int(tree.column[j])
    in_zero, in_one = 1.0, 1.0
    k = next((i for i in range(len(path)) if int(path[i][0]) == column), None)
    if k is not None:
        in_zero, in_one = path[k][1], path[k][2]
        path = _unwind(path, k)
    cover = float(tree.cover[j])
    recurse(tree, go_left, phi, hot, path, in_zero * tree.cover[hot] / cover, in_one, column)
    recurse(tree, go_left, phi, cold, path, in_zero * tree.cover[cold] / cover, 0.0, column)


def _extend(path: list[list[float]], zero: float, one: float, column: int) -> list[list[float]]:
    depth = len(path)
    path.append([column, zero, one, 1.0 if depth == 0 else 0.0])
    for i in range(depth - 1, -1, -1):
        path[i + 1][3] += one * path[i][3] * (i + 1) / (depth + 1)
        path[i][3] = zero * path[i][3] * (depth - i) / (depth + 1)
    return path


def _unwind(path: list[list[float]], index: int) -> list[list[float]]:
    depth = len(path) - 1
    one, zero = path[index][2], path[index][1]
    out = [list(e) for e in path]
    next_one = out[depth][3]
    for i in range(depth - 1, -1, -1):
        if one != 0:
            tmp = out[i][3]
            out[i][3] = next_one * (depth + 1) / ((i + 1) * one)
            next_one = tmp - out[i][3] * zero * (depth - i) / (depth + 1)
        else:
            out[i][3] = out[i][3] * (depth + 1) / (zero * (depth - i))
    for i in range(index, depth):
        out[i][:3] = out[i + 1][:3]
    return out[:depth]


def _unwound_sum(path: list[list[float]], index: int) -> float:
    depth = len(path) - 1
    one, zero = path[index][2], path[index][1]
    next_one = path[depth][3]
    total = 0.0
    for i in range(depth - 1, -1, -1):
        if one != 0:
            tmp = next_one * (depth + 1) / ((i + 1) * one)
            total += tmp
            next_one = path[i][3] - tmp * zero * (depth - i) / (depth + 1)
        elif zero != 0:
            total += (path[i][3] / zero) / ((depth - i) / (depth + 1))
    return total


# --- the serving form ----------------------------------------------------------------


@dataclass(frozen=True)
class PathTables:
    """Every leaf of a forest with its path and precomputed attributions per pattern.

    Node indices in ``edge_node`` are global: the forest's split nodes numbered
    consecutively, as the compiler's ``go_left`` vector orders them.
    """

    leaf_value: np.ndarray  # (L,)
    leaf_full: np.ndarray  # (L,) int: all-agree bit mask, (1 << d) - 1
    edge_node: np.ndarray  # (E,) global split node of each path edge, leaf by leaf
    edge_left: np.ndarray  # (E,) bool: the edge is the split's left branch
    edge_bit: np.ndarray  # (E,) int: 1 << slot of the edge's column in its leaf
    leaf_start: np.ndarray  # (L,) first edge of each leaf (every leaf has >= 1 edge)
    pair_leaf: np.ndarray  # (P,) leaf of each (leaf, unique column) pair
    pair_column: np.ndarray  # (P,) column of the pair
    pair_offset: np.ndarray  # (P,) table index of the pair at pattern 0
    pair_stride: np.ndarray  # (P,) d of the pair's leaf (table step per pattern)
    table: np.ndarray  # flat attributions: leaf-major, then pattern, then slot
    constant: float  # value of single-leaf trees (always reached)
    expected: float  # sum over leaves of v * prod z (+ constant)
    n_columns: int

    def fails(self, go_left: np.ndarray) -> np.ndarray:
        """Per leaf (last axis), the bits of the unique columns the row disagrees with."""
        agree = go_left[..., self.edge_node] == self.edge_left
        bits = np.where(agree, 0, self.edge_bit)
        return np.bitwise_or.reduceat(bits, self.leaf_start, axis=-1)

    def raw(self, go_left: np.ndarray) -> np.ndarray | float:
        """Sum of the leaf values the row(s) reach."""
        reached = self.fails(go_left) == 0
        return reached @ self.leaf_value + self.constant

    def shap(self, go_left: np.ndarray) -> tuple[float, np.ndarray]:
        """``(raw prediction, attributions per column)`` of one row."""
        fails = self.fails(go_left)
        raw = float((fails == 0) @ self.leaf_value) + self.constant
        pattern = self.leaf_full & ~fails
        values = self.table[self.pair_offset + pattern[self.pair_leaf] * self.pair_stride]
        return raw, np.bincount(self.pair_column, weights=values, minlength=self.n_columns)


def build_path_tables(trees: Sequence[Tree], n_columns: int) -> PathTables:
    """Flatten ``trees`` into :class:`PathTables` (split nodes numbered tree by tree)."""
    leaf_value: list[float] = []
    leaf_full: list[int] = []
    edge_node: list[int] = []
    edge_left: list[bool] = []
    edge_bit: list[int] = []
    leaf_start: list[int] = []
    pair_leaf: list[int] = []
    pair_column: list[int] = []
    pair_offset: list[int] = []
    pair_stride: list[int] = []
    tables: list[np.ndarray] = []
    table_size = 0
    constant = expected = 0.0
    node_base = 0
    for tree in trees:
        split_ids = np.cumsum(~tree.is_leaf.astype(bool)) - 1  # node -> global split index
        if tree.is_leaf[0]:
            constant += float(tree.value[0])
            expected += float(tree.value[0])
            continue
        for leaf, path in _leaf_paths(tree):
            columns: list[int] = []
            zeros: list[float] = []
            leaf_start.append(len(edge_node))
            for node, went_left in path:
                column = int(tree.column[node])
                if column not in columns:
                    columns.append(column)
                    zeros.append(1.0)
                slot = columns.index(column)
                child = tree.left[node] if went_left else tree.right[node]
                zeros[slot] *= float(tree.cover[child]) / float(tree.cover[node])
                edge_node.append(node_base + int(split_ids[node]))
                edge_left.append(went_left)
                edge_bit.append(1 << slot)
            d = len(columns)
            v = float(tree.value[leaf])
            index = len(leaf_value)
            leaf_value.append(v)
            leaf_full.append((1 << d) - 1)
            expected += v * math.prod(zeros)
            for slot, column in enumerate(columns):
                pair_leaf.append(index)
                pair_column.append(column)
                pair_offset.append(table_size + slot)
                pair_stride.append(d)
            table = leaf_table(v, np.array(zeros))
            tables.append(table.ravel())
            table_size += table.size
        node_base += int(split_ids[-1]) + 1
    return PathTables(
        leaf_value=np.array(leaf_value),
        leaf_full=np.array(leaf_full, dtype=np.int64),
        edge_node=np.array(edge_node, dtype=np.intp),
        edge_left=np.array(edge_left, dtype=bool),
        edge_bit=np.array(edge_bit, dtype=np.int64),
        leaf_start=np.array(leaf_start, dtype=np.intp),
        pair_leaf=np.array(pair_leaf, dtype=np.intp),
        pair_column=np.array(pair_column, dtype=np.intp),
        pair_offset=np.array(pair_offset, dtype=np.intp),
        pair_stride=np.array(pair_stride, dtype=np.intp),
        table=np.concatenate(tables) if tables else np.zeros(0),
        constant=constant,
        expected=expected,
        n_columns=n_columns,
    )


def _leaf_paths(tree: Tree) -> list[tuple[int, list[tuple[int, bool]]]]:
    """Every leaf with its path from the root: [(split node, went left), ...]."""
    out: list[tuple[int, list[tuple[int, bool]]]] = []
    stack: list[tuple[int, list[tuple[int, bool]]]] = [(0, [])]
    while stack:
        node, path = stack.pop()
        if tree.is_leaf[node]:
            out.append((node, path))
            continue
        stack.append((int(tree.right[node]), [*path, (node, False)]))
        stack.append((int(tree.left[node]), [*path, (node, True)]))
    return out


def leaf_table(value: float, zeros: np.ndarray) -> np.ndarray:
    """Attributions of one leaf for every agreement pattern: shape ``(2^d, d)``.

    Row ``p`` is the pattern whose bit ``i`` says the row agrees with the path's
    edges on unique column ``i`` (``o_i``); see the module docstring.
    """
    d = len(zeros)
    patterns = (np.arange(1 << d)[:, None] >> np.arange(d)[None, :]) & 1  # (P, d) of o
    # Shapley weights w(k, d) = k! (d-k-1)! / d! for coalitions of size k < d.
    weights = np.array([math.factorial(k) * math.factorial(d - k - 1) for k in range(d)])
    weights = weights / math.factorial(d)
    out = np.zeros((1 << d, d))
    for i in range(d):
        # Coefficients of prod_{j != i} (o_j t + z_j), one polynomial per pattern.
        poly = np.zeros((1 << d, d))
        poly[:, 0] = 1.0
        for j in range(d):
            if j == i:
                continue
            shifted = np.zeros_like(poly)
            shifted[:, 1:] = poly[:, :-1]
            poly = zeros[j] * poly + patterns[:, j : j + 1] * shifted
        out[:, i] = value * (patterns[:, i] - zeros[i]) * (poly @ weights)
    return out
