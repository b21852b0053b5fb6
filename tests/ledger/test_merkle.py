"""RFC 6962 Merkle trees: published test vectors and properties."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    merkle_root,
    node_hash,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

# The RFC 6962 reference inputs and roots used by certificate-transparency and
# transparency-dev/merkle (testonly): leaves D[0..7] and MTH(D[0:n]) for n = 1..8.
LEAVES = [
    bytes.fromhex(x)
    for x in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    bytes.fromhex(x)
    for x in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
# (1-based leaf, tree size, path)
INCLUSION = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        2,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert MerkleTree().root() == EMPTY_ROOT == hashlib.sha256(b"").digest()


def test_roots_match_rfc6962_vectors_for_every_prefix() -> None:
    tree = MerkleTree.from_entries(LEAVES)
    for n, want in enumerate(ROOTS, start=1):
        assert tree.root(n) == want
        assert MerkleTree.from_entries(LEAVES[:n]).root() == want
        assert merkle_root([leaf_hash(x) for x in LEAVES[:n]]) == want


def test_inclusion_proofs_match_vectors_and_verify() -> None:
    tree = MerkleTree.from_entries(LEAVES)
    for leaf, size, path_hex in INCLUSION:
        path = [bytes.fromhex(p) for p in path_hex]
        assert tree.inclusion_proof(leaf - 1, size) == path
        assert verify_inclusion(leaf - 1, size, leaf_hash(LEAVES[leaf - 1]), path, ROOTS[size - 1])


def test_consistency_proofs_match_vectors_and_verify() -> None:
    tree = MerkleTree.from_entries(LEAVES)
    for m, n, proof_hex in CONSISTENCY:
        proof = [bytes.fromhex(p) for p in proof_hex]
        assert tree.consistency_proof(m, n) == proof
        assert verify_consistency(m, n, ROOTS[m - 1], ROOTS[n - 1], proof)


def test_corrupted_vector_proofs_are_rejected() -> None:
    some = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    for leaf, size, path_hex in INCLUSION[1:]:
        path = [bytes.fromhex(p) for p in path_hex]
        lh, root, i = leaf_hash(LEAVES[leaf - 1]), ROOTS[size - 1], leaf - 1
        assert not verify_inclusion(i + 1, size, lh, path, root)
        assert not verify_inclusion(i, size * 2, lh, path, root)
        assert not verify_inclusion(i, size, lh, path, some)
        assert not verify_inclusion(i, size, lh, [*path, root], root)
        assert not verify_inclusion(i, size, lh, [root, *path], root)
        assert not verify_inclusion(i, size, lh, path[:-1], root)
    for m, n, proof_hex in CONSISTENCY[1:]:
        proof = [bytes.fromhex(p) for p in proof_hex]
        r1, r2 = ROOTS[m - 1], ROOTS[n - 1]
        assert not verify_consistency(m, n, r2, r1, proof)
        assert not verify_consistency(m, n, r1, r2, [])
        assert not verify_consistency(m, n, r1, r2, proof[:-1])
        assert not verify_consistency(m, n, r1, r2, [*proof, r2])
        assert not verify_consistency(m + 1, n, r1, r2, proof)


def test_consistency_edge_cases() -> None:
    r = ROOTS[0]
    assert verify_consistency(1, 1, r, r, [])
    assert not verify_consistency(1, 1, r, ROOTS[1], [])
    assert not verify_consistency(2, 1, r, r, [])
    assert not verify_consistency(0, 1, EMPTY_ROOT, r, [])


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) != leaf_hash(a + b)
    # A two-leaf tree's root is not the leaf hash of the concatenated leaves.
    assert MerkleTree([a, b]).root() != leaf_hash(a + b)


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_any_leaf_of_any_size_verifies(case: tuple[int, int]) -> None:
    n, i = case
    leaves = _leaves(n)
    tree = MerkleTree(leaves)
    assert verify_inclusion(i, n, leaves[i], tree.inclusion_proof(i), tree.root())


@settings(max_examples=200, deadline=None)
@given(
    st.integers(2, 200).flatmap(
        lambda n: st.tuples(
            st.just(n), st.integers(0, n - 1), st.integers(0, 10_000), st.integers(0, 7)
        )
    )
)
def test_any_flipped_bit_fails(case: tuple[int, int, int, int]) -> None:
    n, i, pick, bit = case
    leaves = _leaves(n)
    tree = MerkleTree(leaves)
    path = tree.inclusion_proof(i)
    root = tree.root()
    # Flip one bit somewhere in (leaf, path..., root).
    parts = [leaves[i], *path, root]
    k = pick % len(parts)
    byte = (pick // len(parts)) % 32
    flipped = bytearray(parts[k])
    flipped[byte] ^= 1 << bit
    parts[k] = bytes(flipped)
    assert not verify_inclusion(i, n, parts[0], parts[1:-1], parts[-1])


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 200).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n - 1), st.integers(1, 400))
    )
)
def test_a_proof_does_not_verify_under_the_root_of_another_size(case: tuple[int, int, int]) -> None:
    n, i, other = case
    leaves = _leaves(max(n, other))
    tree = MerkleTree(leaves)
    path = tree.inclusion_proof(i, n)
    if other != n:
        # The size is bound by the anchored (root, size) pair: the other size's root rejects it.
        assert not verify_inclusion(i, other, leaves[i], path, tree.root(other))
        assert not verify_inclusion(i, n, leaves[i], path, tree.root(other))


def test_rfc6962_paths_alone_do_not_bind_the_size() -> None:
    # Why the registry anchors the size with the root: leaf 0's path in a 5-leaf tree has
    # the shape of a 6-leaf tree's, so the algorithm accepts it for either size.
    leaves = _leaves(5)
    tree = MerkleTree(leaves)
    path = tree.inclusion_proof(0)
    assert verify_inclusion(0, 5, leaves[0], path, tree.root())
    assert root_from_inclusion(0, 6, leaves[0], path) == tree.root()


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 200).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_every_prefix_is_consistent_with_the_whole_log(case: tuple[int, int]) -> None:
    m, n = case
    tree = MerkleTree(_leaves(n))
    proof = tree.consistency_proof(m, n)
    assert verify_consistency(m, n, tree.root(m), tree.root(n), proof)
    if m < n:
        assert not verify_consistency(m, n, leaf_hash(b"x"), tree.root(n), proof)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=8))
def test_appending_in_chunks_equals_building_at_once(chunks: list[int]) -> None:
    total = sum(chunks)
    leaves = _leaves(total)
    tree = MerkleTree()
    start = 0
    for c in chunks:
        tree.append(leaves[start : start + c])
        start += c
        assert tree.root() == MerkleTree(leaves[:start]).root()
    if total:
        assert tree.inclusion_proof(total - 1) == MerkleTree(leaves).inclusion_proof(total - 1)
