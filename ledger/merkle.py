"""RFC 6962 Merkle hash trees: roots, inclusion and consistency proofs, verification.

Pure functions over SHA-256 (plain hashlib), no I/O. Hashes are domain-separated:
a leaf is ``SHA-256(0x00 || entry)`` and an interior node ``SHA-256(0x01 || left || right)``,
so a leaf can never be passed off as a node. A tree of n leaves splits at k, the largest
power of two smaller than n; a node with no right sibling is carried up unchanged (never
duplicated), which gives exactly the RFC's ``MTH``.

The verification algorithms are those of RFC 9162 sections 2.1.3.2 and 2.1.4.2. An
inclusion proof does not bind the tree size on its own: callers must check the size
against the anchored one (the ledger anchors root and size together).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


class MerkleError(ValueError):
    """A proof was asked for something the tree cannot prove (index or size out of range)."""


def leaf_hash(entry: bytes) -> bytes:
    """MTH of a one-leaf tree: SHA-256(0x00 || entry)."""
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """An interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _next_level(level: list[bytes]) -> list[bytes]:
    sha = hashlib.sha256
    n = len(level)
    out = [sha(NODE_PREFIX + level[i] + level[i + 1]).digest() for i in range(0, n - 1, 2)]
    if n & 1:
        out.append(level[-1])  # no sibling: carried up unchanged
    return out


class MerkleTree:
    """An append-only RFC 6962 tree over leaf hashes, with every level kept for proofs.

    ``levels[0]`` are the leaf hashes; ``levels[j][i]`` is the MTH of leaves
    ``[i * 2**j, min((i + 1) * 2**j, size))``. Appending rebuilds only the right edge.
    """

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Sequence[bytes] = ()) -> None:
        for i, h in enumerate(leaf_hashes):
            if len(h) != HASH_SIZE:
                raise MerkleError(f"leaf hash {i} has {len(h)} bytes, expected {HASH_SIZE}")
        levels = [list(leaf_hashes)]
        while len(levels[-1]) > 1:
            levels.append(_next_level(levels[-1]))
        self._levels: list[list[bytes]] = levels

    @classmethod
    def from_entries(cls, entries: Sequence[bytes]) -> MerkleTree:
        sha = hashlib.sha256
        return cls([sha(LEAF_PREFIX + e).digest() for e in entries])

    def append(self, new_leaf_hashes: Sequence[bytes]) -> None:
        """Append leaves; only nodes on or right of the old right edge are recomputed."""
        for i, h in enumerate(new_leaf_hashes):
            if len(h) != HASH_SIZE:
                raise MerkleError(f"leaf hash {i} has {len(h)} bytes, expected {HASH_SIZE}")
        if not new_leaf_hashes:
            return
        levels = self._levels
        old = len(levels[0])
        levels[0].extend(new_leaf_hashes)
        j = 0
        start = old  # first index at level j that may have changed
        sha = hashlib.sha256
        while len(levels[j]) > 1:
            below = levels[j]
            n = len(below)
            parent_start = start >> 1
            if j + 1 == len(levels):
                levels.append([])
            parent = levels[j + 1]
            del parent[parent_start:]
            for i in range(parent_start * 2, n - 1, 2):
                parent.append(sha(NODE_PREFIX + below[i] + below[i + 1]).digest())
            if n & 1:
                parent.append(below[-1])
            start = parent_start
            j += 1
        del levels[j + 1 :]

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def leaf(self, index: int) -> bytes:
        return self._levels[0][index]

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all). The empty tree is SHA-256('')."""
        size = self.size if size is None else size
        self._check_size(size)
        if size == 0:
            return EMPTY_ROOT
        return self._mth(0, size)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise MerkleError(f"tree size {size} out of range 0..{self.size}")

    def _mth(self, lo: int, hi: int) -> bytes:
        """MTH of leaves [lo, hi), from stored nodes where possible."""
        n = hi - lo
        if n == 1:
            return self._levels[0][lo]
        # A stored node covers [lo, hi) if lo is aligned to 2**j and hi is its end.
        j = (n - 1).bit_length()  # smallest j with 2**j >= n
        if lo % (1 << j) == 0 and (hi == lo + (1 << j) or hi == self.size):
            return self._levels[j][lo >> j]
        k = _split(n)
        return node_hash(self._mth(lo, lo + k), self._mth(lo + k, hi))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path of leaf ``index`` in the tree of the first ``size`` leaves."""
        size = self.size if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise MerkleError(f"leaf index {index} out of range for tree size {size}")
        if size == self.size:
            return self._fast_path(index)
        path: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                path.append(self._mth(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._mth(lo, lo + k))
                lo = lo + k
        path.reverse()
        return path

    def _fast_path(self, index: int) -> list[bytes]:
        path: list[bytes] = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index >>= 1
        return path

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 6962 PROOF(m, D[n]): the old tree is a prefix of the new one."""
        new_size = self.size if new_size is None else new_size
        self._check_size(new_size)
        if not 0 < old_size <= new_size:
            raise MerkleError(
                f"consistency needs 0 < old size <= new size, got {old_size}, {new_size}"
            )
        if old_size == new_size:
            return []
        return self._subproof(old_size, 0, new_size, True)

    def _subproof(self, m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if complete else [self._mth(lo, hi)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, lo, lo + k, complete), self._mth(lo + k, hi)]
        return [*self._subproof(m - k, lo + k, hi, False), self._mth(lo, lo + k)]


def merkle_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes, level by level (the fast path the tree uses)."""
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root an inclusion proof implies (RFC 9162 2.1.3.2); raises MerkleError if malformed."""
    if not 0 <= index < size:
        raise MerkleError(f"leaf index {index} out of range for tree size {size}")
    if len(leaf) != HASH_SIZE:
        raise MerkleError(f"leaf hash has {len(leaf)} bytes, expected {HASH_SIZE}")
    fn, sn = index, size - 1
    r = leaf
    sha = hashlib.sha256
    for p in path:
        if len(p) != HASH_SIZE:
            raise MerkleError(f"proof element has {len(p)} bytes, expected {HASH_SIZE}")
        if sn == 0:
            raise MerkleError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = sha(NODE_PREFIX + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha(NODE_PREFIX + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleError("inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes
) -> bool:
    """True iff ``path`` proves leaf hash ``leaf`` at ``index`` in the tree of ``size`` with ``root``."""
    try:
        return root_from_inclusion(index, size, leaf, path) == root
    except MerkleError:
        return False


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True iff ``proof`` shows the tree (old_size, old_root) is a prefix of (new_size, new_root)."""
    if old_size < 0 or new_size < old_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return False  # anything extends the empty tree: such a proof proves nothing
    if not proof or any(len(p) != HASH_SIZE for p in proof):
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # exact power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    sha = hashlib.sha256
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = sha(NODE_PREFIX + c + fr).digest()
            sr = sha(NODE_PREFIX + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = sha(NODE_PREFIX + sr + c).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
