"""A Merkle tree over record hashes (RFC 9162 shape), with inclusion proofs.

Leaves and inner nodes are domain-separated (``0x00`` / ``0x01`` prefixes) so a leaf
can never pass for a node. A tree of ``n`` leaves splits at the largest power of two
below ``n``, which makes proofs at most ``ceil(log2 n)`` hashes long.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """The hash of a leaf holding ``data``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an inner node over two children."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n`` >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of_leaves(leaves: Sequence[bytes]) -> bytes:
    """The root over already-hashed ``leaves``, computed bottom-up in O(n).

    Pairing neighbours level by level and carrying an odd last node up unchanged gives
    the same tree as the recursive largest-power-of-two split.
    """
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def root(items: Sequence[bytes]) -> bytes:
    """The root over record hashes ``items`` (each becomes a leaf)."""
    return root_of_leaves([leaf_hash(i) for i in items])


def inclusion_proof(items: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of ``items[index]``: sibling hashes from the leaf up to the root."""
    if not 0 <= index < len(items):
        raise IndexError(index)
    leaves = [leaf_hash(i) for i in items]
    path: list[bytes] = []

    def walk(lo: int, hi: int) -> None:
        n = hi - lo
        if n == 1:
            return
        k = _split(n)
        if index - lo < k:
            walk(lo, lo + k)
            path.append(root_of_leaves(leaves[lo + k : hi]))
        else:
            walk(lo + k, hi)
            path.append(root_of_leaves(leaves[lo : lo + k]))

    walk(0, len(leaves))
    return path


def verify_inclusion(
    item: bytes, index: int, size: int, path: Sequence[bytes], root_: bytes
) -> bool:
    """True if ``item`` is leaf ``index`` of a tree of ``size`` leaves with root ``root_``.

    RFC 9162 section 2.1.3.2, verbatim in structure.
    """
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf_hash(item)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_
