"""RFC 6962 Merkle trees over the audit log (SHA-256), with inclusion and consistency proofs.

Hashing, tree shape and proofs follow RFC 6962 §2.1 exactly (MTH, PATH, PROOF/SUBPROOF):
a leaf is ``H(0x00 ‖ entry)``, an interior node ``H(0x01 ‖ left ‖ right)``, and a tree of
n > 1 leaves splits at k, the largest power of two below n. The verifiers are the
algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 (the same checks, written as loops). Proofs
are lists of 32-byte hashes, deepest first, as the RFC orders them.

Everything below works on *leaf hashes* (already ``H(0x00 ‖ entry)``), as
transparency-dev/merkle does, so a log of a million entries is hashed once, not per proof.
We wrote this ourselves because no maintained Python package implements RFC 6962 proofs
(transparency-dev/merkle is Go); the test suite runs the published vectors and probes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) = SHA-256()

_sha256 = hashlib.sha256


def leaf_hash(entry: bytes) -> bytes:
    return _sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """k: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes.

    Hashes level by level, pairing neighbours and carrying an odd last node up unchanged:
    that builds exactly the RFC's left-balanced tree (the left part of every split is a
    perfect subtree), with one C-level sha256 call per node and no recursion.
    """
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    level = list(leaves)
    sha = _sha256
    prefix = NODE_PREFIX
    while len(level) > 1:
        odd = level.pop() if len(level) & 1 else None
        nxt = [sha(prefix + a + b).digest() for a, b in zip(level[0::2], level[1::2], strict=True)]
        if odd is not None:
            nxt.append(odd)
        level = nxt
    return level[0]


def _check_leaves(size: int, leaves: Sequence[bytes]) -> None:
    if size > len(leaves):
        raise ValueError(f"tree size {size} is larger than the {len(leaves)} leaves given")


def inclusion_proof(index: int, size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[0:size]) (RFC 6962 §2.1.1)."""
    _check_leaves(size, leaves)
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    path: list[bytes] = []  # collected top-down; the RFC lists it bottom-up
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(root(leaves[lo + k : hi]))
            hi = lo + k
        else:
            path.append(root(leaves[lo : lo + k]))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def consistency_proof(m: int, n: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true) (RFC 6962 §2.1.2).

    Empty for m = 0 and m = n, where the RFC needs no proof (every tree extends the
    empty tree, and a tree is consistent with itself).
    """
    _check_leaves(n, leaves)
    if not 0 <= m <= n:
        raise ValueError(f"cannot prove size {m} consistent with a smaller size {n}")
    proof: list[bytes] = []
    if m == 0 or m == n:
        return proof
    lo, hi, mm, complete = 0, n, m, True
    while True:
        size = hi - lo
        if mm == size:
            # SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])}
            if not complete:
                proof.append(root(leaves[lo:hi]))
            break
        k = _split(size)
        if mm <= k:
            proof.append(root(leaves[lo + k : hi]))
            hi = lo + k
        else:
            proof.append(root(leaves[lo : lo + k]))
            lo, mm, complete = lo + k, mm - k, False
    proof.reverse()
    return proof


def _well_formed(*hashes: bytes) -> bool:
    return all(isinstance(h, bytes | bytearray) and len(h) == HASH_SIZE for h in hashes)


def root_from_inclusion_proof(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes | None:
    """The root a valid proof implies, or None when the proof cannot be for (index, size)."""
    if not 0 <= index < size or not _well_formed(leaf, *proof):
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None  # proof longer than the path
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                # We are a last, unpaired node: climb until we are a right child (or the root)
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None  # sn != 0: proof shorter than the path


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root_hash: bytes
) -> bool:
    """Leaf hash ``leaf`` is entry ``index`` of the tree of ``size`` with ``root_hash``."""
    if not _well_formed(root_hash):
        return False
    return root_from_inclusion_proof(leaf, index, size, proof) == root_hash


def verify_consistency(
    m: int, n: int, root_m: bytes, root_n: bytes, proof: Sequence[bytes]
) -> bool:
    """The tree of size ``m`` (``root_m``) is a prefix of the tree of size ``n`` (``root_n``)."""
    if m < 0 or m > n:
        return False
    if m == n:
        return not proof and root_m == root_n
    if m == 0:
        return not proof  # the empty tree is a prefix of every tree
    if not proof or not _well_formed(root_m, root_n, *proof):
        return False
    nodes = list(proof)
    if m & (m - 1) == 0:  # m is a power of two: the old root is itself a node of the new tree
        nodes.insert(0, root_m)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root_m and sr == root_n


class CompactTree:
    """An append-only Merkle frontier: the roots of the perfect subtrees left to right.

    Holds at most log2(n) hashes, so the log can be streamed once and the root read at
    any size along the way (each signed checkpoint) without keeping every leaf.
    """

    __slots__ = ("size", "_stack")

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[bytes] = []

    def append(self, leaf: bytes) -> None:
        stack, h, s = self._stack, leaf, self.size
        while s & 1:  # each trailing 1 bit of the size is a perfect subtree to merge with
            h = _sha256(NODE_PREFIX + stack.pop() + h).digest()
            s >>= 1
        stack.append(h)
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        stack = self._stack
        if not stack:
            return EMPTY_ROOT
        r = stack[-1]
        for h in reversed(stack[:-1]):
            r = _sha256(NODE_PREFIX + h + r).digest()
        return r
