"""Merkle tree properties: the O(n) root equals the RFC 9162 definition; proofs verify
for every leaf and fail for any other leaf, index or root."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from gateway.integrity import merkle


def reference_root(items: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.1, recursively."""
    if not items:
        return hashlib.sha256(b"").digest()
    if len(items) == 1:
        return merkle.leaf_hash(items[0])
    k = 1 << ((len(items) - 1).bit_length() - 1)
    return merkle.node_hash(reference_root(items[:k]), reference_root(items[k:]))


items_st = st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=70)


@given(items_st)
def test_root_matches_the_recursive_definition(items: list[bytes]) -> None:
    assert merkle.root(items) == reference_root(items)


@given(items_st, st.data())
def test_every_leaf_proves_and_nothing_else_does(items: list[bytes], data: st.DataObject) -> None:
    n = len(items)
    index = data.draw(st.integers(0, n - 1))
    root = merkle.root(items)
    path = merkle.inclusion_proof(items, index)
    assert len(path) <= max(0, (n - 1).bit_length())
    assert merkle.verify_inclusion(items[index], index, n, path, root)
    assert not merkle.verify_inclusion(items[index] + b"x", index, n, path, root)
    other = data.draw(st.integers(0, n - 1))
    if items[other] != items[index]:
        assert not merkle.verify_inclusion(items[other], index, n, path, root)
    if n > 1:
        wrong = (index + 1) % n
        assert not merkle.verify_inclusion(items[index], wrong, n, path, root) or (
            items[wrong] == items[index]
        )
    # (the tree size is bound by the checkpoint hash, not by the path: not checked here)
    assert not merkle.verify_inclusion(items[index], n, n, path, root)
    assert not merkle.verify_inclusion(items[index], index, n, path, merkle.node_hash(root, root))
    if path:
        broken = [*path[:-1], bytes(32)]
        assert not merkle.verify_inclusion(items[index], index, n, broken, root)


def test_a_leaf_cannot_pass_for_a_node() -> None:
    a, b = b"a", b"b"
    root = merkle.root([a, b])
    forged_leaf = merkle.leaf_hash(a) + merkle.leaf_hash(b)  # the node's preimage, minus prefix
    assert merkle.root([forged_leaf]) != root
