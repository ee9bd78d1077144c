"""RFC 6962 Merkle trees: published vectors, the verifier's error probes, and fuzzing.

The vectors (leaf inputs, the roots of the 8-leaf reference tree at every size, and the
inclusion and consistency proofs) are those of transparency-dev/merkle's
``proof/verify_test.go`` (originally certificate-transparency's C++ merkle_tree_test.cc);
the probes mirror its ``corruptInclusionProof`` / ``corruptConsistencyProof``.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.audit.merkle import (
    EMPTY_ROOT,
    CompactTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

H = bytes.fromhex

LEAF_INPUTS = [
    H(""),
    H("00"),
    H("10"),
    H("2021"),
    H("3031"),
    H("40414243"),
    H("5051525354555657"),
    H("606162636465666768696a6b6c6d6e6f"),
]
LEAVES = [leaf_hash(d) for d in LEAF_INPUTS]

ROOTS = [  # MTH of the first 1..8 leaves
    H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    H("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    H("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    H("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    H("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    H("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

# (leaf number, 1-based as in the source; tree size; proof)
INCLUSION = [
    (
        1,
        8,
        [
            H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (3, 3, [H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        2,
        5,
        [
            H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]

CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]

SOME_HASH = H("abacaba000000000000000000000000000000000000000000060061e00123456")


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH written as the recursive definition: the reference for ``root``."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


# --------------------------------------------------------------------------- vectors


def test_hashing_is_domain_separated() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()


@pytest.mark.parametrize("size", range(1, 9))
def test_reference_roots(size: int) -> None:
    assert root(LEAVES[:size]) == ROOTS[size - 1]
    tree = CompactTree()
    tree.extend(LEAVES[:size])
    assert tree.root() == ROOTS[size - 1]


def test_empty_tree() -> None:
    assert root([]) == EMPTY_ROOT == CompactTree().root()


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION)
def test_inclusion_vectors(leaf: int, size: int, proof: list[bytes]) -> None:
    index = leaf - 1
    assert inclusion_proof(index, size, LEAVES) == proof
    assert root_from_inclusion_proof(LEAVES[index], index, size, proof) == ROOTS[size - 1]
    assert verify_inclusion(LEAVES[index], index, size, proof, ROOTS[size - 1])


@pytest.mark.parametrize(("m", "n", "proof"), CONSISTENCY)
def test_consistency_vectors(m: int, n: int, proof: list[bytes]) -> None:
    assert consistency_proof(m, n, LEAVES) == proof
    assert verify_consistency(m, n, ROOTS[m - 1], ROOTS[n - 1], proof)


# --------------------------------------------------------------------------- probes


def inclusion_probes(
    index: int, size: int, proof: list[bytes], root_hash: bytes, leaf: bytes
) -> list[tuple[str, tuple]]:
    probes = [
        ("leafIndex - 1", (leaf, index - 1, size, proof, root_hash)),
        ("leafIndex + 1", (leaf, index + 1, size, proof, root_hash)),
        ("leafIndex ^ 2", (leaf, index ^ 2, size, proof, root_hash)),
        ("treeSize * 2", (leaf, index, size * 2, proof, root_hash)),
        ("treeSize / 2", (leaf, index, size // 2, proof, root_hash)),
        ("wrong leaf", (b"WrongLeaf", index, size, proof, root_hash)),
        ("empty root", (leaf, index, size, proof, EMPTY_ROOT)),
        ("random root", (leaf, index, size, proof, SOME_HASH)),
        ("trailing garbage", (leaf, index, size, [*proof, b""], root_hash)),
        ("trailing root", (leaf, index, size, [*proof, root_hash], root_hash)),
        ("preceding garbage", (leaf, index, size, [b"", *proof], root_hash)),
        ("preceding root", (leaf, index, size, [root_hash, *proof], root_hash)),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = bytes([wrong[i][0] ^ 8]) + wrong[i][1:]
        probes.append((f"modified proof[{i}] bit 3", (leaf, index, size, wrong, root_hash)))
    if proof:
        probes.append(("removed component", (leaf, index, size, proof[:-1], root_hash)))
    if len(proof) > 1:
        probes.append(
            (
                "inserted component",
                (leaf, index, size, [proof[0], SOME_HASH, *proof[1:]], root_hash),
            )
        )
        probes.append(
            ("swapped components", (leaf, index, size, [proof[1], proof[0], *proof[2:]], root_hash))
        )
    return probes


def consistency_probes(
    m: int, n: int, root_m: bytes, root_n: bytes, proof: list[bytes]
) -> list[tuple[str, tuple]]:
    probes = [
        ("size1 - 1", (m - 1, n, root_m, root_n, proof)),
        ("size1 + 1", (m + 1, n, root_m, root_n, proof)),
        ("size1 ^ 2", (m ^ 2, n, root_m, root_n, proof)),
        ("size2 * 2", (m, n * 2, root_m, root_n, proof)),
        ("size2 / 2", (m, n // 2, root_m, root_n, proof)),
        ("wrong root1", (m, n, b"WrongRoot", root_n, proof)),
        ("wrong root2", (m, n, root_m, b"WrongRoot", proof)),
        ("swapped roots", (m, n, root_n, root_m, proof)),
        ("empty proof", (m, n, root_m, root_n, [])),
        ("trailing garbage", (m, n, root_m, root_n, [*proof, b""])),
        ("trailing root1", (m, n, root_m, root_n, [*proof, root_m])),
        ("trailing root2", (m, n, root_m, root_n, [*proof, root_n])),
        ("preceding garbage", (m, n, root_m, root_n, [b"", *proof])),
        ("preceding root1", (m, n, root_m, root_n, [root_m, *proof])),
        ("preceding root2", (m, n, root_m, root_n, [root_n, *proof])),
        ("preceding proof[0]", (m, n, root_m, root_n, [proof[0], *proof])),
        ("truncated proof", (m, n, root_m, root_n, proof[:-1])),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = bytes([wrong[i][0] ^ 16]) + wrong[i][1:]
        probes.append((f"modified proof[{i}] bit 4", (m, n, root_m, root_n, wrong)))
    if len(proof) > 1:
        probes.append(("swapped nodes", (m, n, root_m, root_n, [proof[1], proof[0], *proof[2:]])))
    return probes


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION)
def test_inclusion_probes_fail(leaf: int, size: int, proof: list[bytes]) -> None:
    index = leaf - 1
    probes = inclusion_probes(index, size, proof, ROOTS[size - 1], LEAVES[index])
    accepted = [desc for desc, args in probes if verify_inclusion(*args)]
    assert accepted == []


@pytest.mark.parametrize(("m", "n", "proof"), [c for c in CONSISTENCY if c[2]])
def test_consistency_probes_fail(m: int, n: int, proof: list[bytes]) -> None:
    probes = consistency_probes(m, n, ROOTS[m - 1], ROOTS[n - 1], proof)
    accepted = [desc for desc, args in probes if verify_consistency(*args)]
    assert accepted == []


def test_inclusion_degenerate_cases() -> None:
    data_hash = leaf_hash(b"data")
    assert verify_inclusion(data_hash, 0, 1, [], data_hash)  # one leaf: root == leaf
    assert not verify_inclusion(b"", 0, 1, [], data_hash)
    assert not verify_inclusion(data_hash, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], b"")
    for index, size in ((0, 0), (0, 1), (1, 0), (2, 1)):
        assert not verify_inclusion(SOME_HASH, index, size, [], b"")
        assert not verify_inclusion(b"", index, size, [], EMPTY_ROOT)
        assert not verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)


@pytest.mark.parametrize(
    ("m", "n", "root_m", "root_n", "proof", "ok"),
    [
        (0, 0, b"1" * 32, b"2" * 32, [], False),
        (1, 1, b"1" * 32, b"2" * 32, [], False),
        (0, 0, b"1" * 32, b"1" * 32, [], True),  # sizes that are always consistent
        (0, 1, b"1" * 32, b"2" * 32, [], True),
        (1, 1, b"2" * 32, b"2" * 32, [], True),
        (1, 0, b"1" * 32, b"2" * 32, [], False),  # time travel to the past
        (2, 1, b"1" * 32, b"2" * 32, [], False),
        (1, 2, b"1" * 32, b"2" * 32, [], False),  # empty proof
        (0, 0, EMPTY_ROOT, b"2" * 32, [], False),  # roots do not match
        (1, 1, EMPTY_ROOT, b"2" * 32, [], False),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),  # match, but a proof given
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
    ],
)
def test_consistency_degenerate_cases(
    m: int, n: int, root_m: bytes, root_n: bytes, proof: list[bytes], ok: bool
) -> None:
    assert verify_consistency(m, n, root_m, root_n, proof) is ok


def test_proof_generation_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError):
        inclusion_proof(8, 8, LEAVES)
    with pytest.raises(ValueError):
        inclusion_proof(0, 9, LEAVES)
    with pytest.raises(ValueError):
        consistency_proof(5, 4, LEAVES)


# --------------------------------------------------------------------------- fuzzing

sizes = st.integers(min_value=1, max_value=70)


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


@settings(max_examples=300, deadline=None)
@given(n=sizes, data=st.data())
def test_generated_inclusion_proofs_verify_and_mutations_fail(n: int, data: st.DataObject) -> None:
    leaves = _leaves(n)
    assert root(leaves) == mth(leaves)
    index = data.draw(st.integers(0, n - 1))
    proof = inclusion_proof(index, n, leaves)
    r = root(leaves)
    assert verify_inclusion(leaves[index], index, n, proof, r)
    for desc, args in inclusion_probes(index, n, proof, r, leaves[index]):
        assert not verify_inclusion(*args), desc
    # Any other leaf at that index fails.
    other = data.draw(st.integers(0, n - 1).filter(lambda j: j != index) if n > 1 else st.none())
    if other is not None:
        assert not verify_inclusion(leaves[other], index, n, proof, r)


@settings(max_examples=300, deadline=None)
@given(n=sizes, data=st.data())
def test_generated_consistency_proofs_verify_and_mutations_fail(
    n: int, data: st.DataObject
) -> None:
    leaves = _leaves(n)
    m = data.draw(st.integers(0, n))
    proof = consistency_proof(m, n, leaves)
    root_m, root_n = root(leaves[:m]), root(leaves)
    assert verify_consistency(m, n, root_m, root_n, proof)
    tree = CompactTree()
    tree.extend(leaves[:m])
    assert tree.root() == root_m
    if not proof:
        return
    for desc, args in consistency_probes(m, n, root_m, root_n, proof):
        assert not verify_consistency(*args), desc
    # A different history of the same size is never consistent.
    forked = leaves[: m - 1] + [leaf_hash(b"forged")] + leaves[m:]
    assert not verify_consistency(m, n, root(forked[:m]), root_n, proof)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 600))
def test_iterative_root_matches_the_rfc_definition(n: int) -> None:
    leaves = _leaves(n)
    tree = CompactTree()
    tree.extend(leaves)
    assert root(leaves) == mth(leaves) == tree.root()
